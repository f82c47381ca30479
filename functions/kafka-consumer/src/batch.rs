//! The event the Kafka event source invokes us with, read leniently, and the partial batch
//! response we answer with.
//!
//! `aws_lambda_events::kafka::KafkaEvent` fails as a whole on one odd record (a timestamp out of
//! chrono's range, a value that is not a string), and a batch that cannot be read is retried
//! forever. Here each record is read on its own: one that does not fit costs only itself.

use std::collections::HashMap;

use base64::Engine;
use chat_core::trace::{Trace, RECORD_HEADER};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The invocation: records by `"<topic>-<partition>"`.
#[derive(Debug, Default, Deserialize)]
pub struct Batch {
    #[serde(default)]
    pub records: HashMap<String, Vec<Value>>,
}

/// One record as delivered; the fields are checked only where they are used.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// As delivered: milliseconds since the epoch, if it is a number at all.
    pub timestamp: Option<i64>,
    /// Base64, as delivered.
    pub key: Option<String>,
    pub value: Option<Value>,
    /// The stamps of a traced record (its `chat-trace` header), see [`chat_core::trace`].
    pub trace: Option<Trace>,
}

impl Record {
    /// The record at `raw`, or `None` when it does not even say where it is from (no event
    /// source sends that: such an entry is logged and skipped, as it cannot be retried or
    /// dead-lettered by position).
    pub fn read(raw: &Value, list_key: &str) -> Option<Record> {
        let partition = raw.get("partition")?.as_i64()?;
        let offset = raw.get("offset")?.as_i64()?;
        let topic = raw
            .get("topic")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| topic_of(list_key, partition));
        Some(Record {
            topic,
            partition: i32::try_from(partition).ok()?,
            offset,
            timestamp: raw.get("timestamp").and_then(Value::as_i64),
            key: raw.get("key").and_then(Value::as_str).map(str::to_owned),
            value: raw.get("value").cloned(),
            trace: trace_of(raw),
        })
    }

    /// The value's bytes, or why there are none.
    pub fn value_bytes(&self) -> Result<Vec<u8>, String> {
        match &self.value {
            None | Some(Value::Null) => Err("record has no value".into()),
            Some(Value::String(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("record value is not base64: {e}")),
            Some(other) => Err(format!("record value is not a base64 string: {other}")),
        }
    }

    /// The key as text (the group id our producers use), lossy.
    pub fn key_text(&self) -> String {
        self.key
            .as_deref()
            .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .unwrap_or_default()
    }

    /// The record's timestamp, or why it cannot be one.
    pub fn time(&self) -> Result<DateTime<Utc>, String> {
        let ms = self.timestamp.ok_or("record has no timestamp")?;
        match DateTime::from_timestamp_millis(ms) {
            Some(at) if ms >= 0 => Ok(at),
            _ => Err(format!("record timestamp {ms} is out of range")),
        }
    }

    /// How the partial batch response names this record.
    pub fn identifier(&self) -> ItemIdentifier {
        ItemIdentifier {
            partition: format!("{}-{}", self.topic, self.partition),
            offset: self.offset,
        }
    }
}

/// The `chat-trace` header of an entry, if it has one: headers are a list of one-key objects
/// whose values are arrays of signed bytes.
fn trace_of(raw: &Value) -> Option<Trace> {
    let bytes = raw
        .get("headers")?
        .as_array()?
        .iter()
        .find_map(|header| header.get(RECORD_HEADER))?
        .as_array()?
        .iter()
        .map(|b| b.as_i64().map(|b| b as u8))
        .collect::<Option<Vec<u8>>>()?;
    Some(Trace::parse(&String::from_utf8_lossy(&bytes)))
}

/// `"chat-events-3"` for partition 3 when the list key says so, else `"<key>"` without its
/// partition suffix.
fn topic_of(list_key: &str, partition: i64) -> String {
    list_key
        .strip_suffix(&format!("-{partition}"))
        .unwrap_or(list_key)
        .to_owned()
}

/// The partial batch response (`FunctionResponseTypes: [ReportBatchItemFailures]`): per
/// partition, the first record that failed; it and what follows it in its partition are
/// retried, everything else is done.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: ItemIdentifier,
}

/// A Kafka record's identifier in a partial batch response: `"<topic>-<partition>"` and the
/// offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemIdentifier {
    pub partition: String,
    pub offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn odd_records_are_read_one_by_one() {
        let batch: Batch = serde_json::from_value(json!({
            "eventSource": "aws:kafka",
            "records": {"chat-events-0": [
                {"topic": "chat-events", "partition": 0, "offset": 1, "timestamp": 1,
                 "key": "MQ==", "value": "e30="},
                {"partition": 0, "offset": 2, "timestamp": 9_000_000_000_000_000i64, "value": 5},
                {"partition": 0, "offset": 3, "timestamp": -1, "value": null},
                {"offset": 4},
            ]}
        }))
        .expect("a batch reads whatever its records are");
        let list = &batch.records["chat-events-0"];
        let read: Vec<Option<Record>> = list
            .iter()
            .map(|r| Record::read(r, "chat-events-0"))
            .collect();
        let first = read[0].as_ref().expect("first");
        assert_eq!(first.value_bytes(), Ok(b"{}".to_vec()));
        assert_eq!(first.key_text(), "1");
        assert!(first.time().is_ok());
        let second = read[1].as_ref().expect("second");
        assert_eq!(second.topic, "chat-events");
        assert!(second.value_bytes().is_err());
        assert!(second.time().is_err_and(|e| e.contains("out of range")));
        let third = read[2].as_ref().expect("third");
        assert_eq!(third.value_bytes(), Err("record has no value".into()));
        assert!(third.time().is_err());
        assert!(read[3].is_none());
    }

    #[test]
    fn the_partial_response_has_aws_shape() {
        let record = Record {
            topic: "chat-events".into(),
            partition: 2,
            offset: 41,
            timestamp: None,
            key: None,
            value: None,
            trace: None,
        };
        let response = BatchResponse {
            batch_item_failures: vec![BatchItemFailure {
                item_identifier: record.identifier(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&response).expect("json"),
            json!({"batchItemFailures": [
                {"itemIdentifier": {"partition": "chat-events-2", "offset": 41}}
            ]})
        );
    }
}
