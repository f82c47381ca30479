//! The event Lambda receives from a Kafka event source, built from consumed records.

use std::collections::BTreeMap;

use base64::Engine;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{Message, Timestamp};
use serde_json::{json, Value};

/// The KafkaEvent JSON for a batch, as Lambda receives it.
pub fn kafka_event(records: &[OwnedMessage], event_source: &str, bootstrap_servers: &str) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in records {
        let (timestamp, timestamp_type) = match m.timestamp() {
            Timestamp::CreateTime(t) => (t, "CREATE_TIME"),
            Timestamp::LogAppendTime(t) => (t, "LOG_APPEND_TIME"),
            Timestamp::NotAvailable => (0, "NO_TIMESTAMP_TYPE"),
        };
        let headers: Vec<Value> = m
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        let bytes: Vec<i8> = h
                            .value
                            .unwrap_or_default()
                            .iter()
                            .map(|b| *b as i8)
                            .collect();
                        json!({ h.key: bytes })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut record = json!({
            "topic": m.topic(),
            "partition": m.partition(),
            "offset": m.offset(),
            "timestamp": timestamp,
            "timestampType": timestamp_type,
            "value": m.payload().map(b64),
            "headers": headers,
        });
        if let Some(key) = m.key() {
            record["key"] = Value::from(b64(key));
        }
        grouped
            .entry(format!("{}-{}", m.topic(), m.partition()))
            .or_default()
            .push(record);
    }
    let mut event = json!({
        "eventSource": event_source,
        "bootstrapServers": bootstrap_servers,
        "records": grouped,
    });
    if event_source == "aws:kafka" {
        event["eventSourceArn"] =
            Value::from("arn:aws:kafka:us-east-1:000000000000:cluster/local/00000000-0000-0000-0000-000000000000-1");
    }
    event
}
