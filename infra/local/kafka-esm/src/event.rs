//! The event Lambda receives from a Kafka event source, built from consumed records.

use std::collections::BTreeMap;

use base64::Engine;
use chat_core::trace::{Trace, RECORD_HEADER};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::{Message, Timestamp};
use serde_json::{json, Value};

/// Stamps when a traced record (one with a [`RECORD_HEADER`] header) was fetched; others are
/// returned as they are. AWS's event source stamps nothing: this is the local stack's view of
/// the hop between the broker and the function.
pub fn stamp_fetched(m: OwnedMessage) -> OwnedMessage {
    let traced = m
        .headers()
        .is_some_and(|h| h.iter().any(|h| h.key == RECORD_HEADER));
    if !traced {
        return m;
    }
    let mut headers = OwnedHeaders::new();
    for h in m.headers().into_iter().flat_map(|h| h.iter()) {
        if h.key == RECORD_HEADER {
            let mut trace = Trace::parse(&String::from_utf8_lossy(h.value.unwrap_or_default()));
            trace.stamp("fetched");
            headers = headers.insert(Header {
                key: h.key,
                value: Some(&trace.to_header()),
            });
        } else {
            headers = headers.insert(h);
        }
    }
    m.replace_headers(Some(headers))
}

/// A header's value as the event carries it, a traced record's with when it was sent.
fn header_value(key: &str, value: &[u8]) -> Vec<i8> {
    let stamped;
    let bytes = if key == RECORD_HEADER {
        let mut trace = Trace::parse(&String::from_utf8_lossy(value));
        trace.stamp("invoking");
        stamped = trace.to_header();
        stamped.as_bytes()
    } else {
        value
    };
    bytes.iter().map(|b| *b as i8).collect()
}

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
                    .map(|h| json!({ h.key: header_value(h.key, h.value.unwrap_or_default()) }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: Option<OwnedHeaders>) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(b"1".to_vec()),
            "chat-events".into(),
            Timestamp::CreateTime(1),
            0,
            7,
            headers,
        )
    }

    fn event_header(m: OwnedMessage, key: &str) -> Option<String> {
        let event = kafka_event(&[m], "aws:kafka", "b:9092");
        let headers = event["records"]["chat-events-0"][0]["headers"]
            .as_array()?
            .clone();
        let bytes = headers.iter().find_map(|h| h.get(key))?.as_array()?.clone();
        let bytes: Vec<u8> = bytes
            .iter()
            .filter_map(Value::as_i64)
            .map(|b| b as u8)
            .collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    #[test]
    fn a_traced_record_gets_fetched_and_invoking_stamps_and_keeps_its_other_headers() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "other",
                value: Some("x"),
            })
            .insert(Header {
                key: RECORD_HEADER,
                value: Some("received=5"),
            });
        let fetched = stamp_fetched(record(Some(headers)));
        let trace = Trace::parse(&event_header(fetched.clone(), RECORD_HEADER).expect("trace"));
        assert_eq!(trace.get("received"), Some(5));
        let (at, sent) = (trace.get("fetched"), trace.get("invoking"));
        assert!(
            at.is_some_and(|f| sent.is_some_and(|i| 5 < f && f <= i)),
            "{trace:?}"
        );
        assert_eq!(event_header(fetched, "other").as_deref(), Some("x"));
    }

    #[test]
    fn an_untraced_record_is_left_as_it_is() {
        let plain = stamp_fetched(record(Some(OwnedHeaders::new().insert(Header {
            key: "other",
            value: Some("x"),
        }))));
        assert_eq!(event_header(plain.clone(), "other").as_deref(), Some("x"));
        assert_eq!(event_header(plain, RECORD_HEADER), None);
        assert!(stamp_fetched(record(None)).headers().is_none());
    }
}
