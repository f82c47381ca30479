//! Dead letters: a record that can never be applied goes to the dead-letter topic with where
//! it came from, why, and as much of its value as fits.

use base64::Engine;
use chat_core::publish::PublishError;
use serde_json::json;

use crate::batch::Record;
use crate::{ProcessError, Processor};

/// The most of a record's value a dead letter carries, in bytes before base64: the letter
/// stays well under the producer's 1 MB message limit (`message.max.bytes`) and the broker's.
pub const MAX_LETTER_VALUE_BYTES: usize = 256 * 1024;

impl Processor {
    /// Publishes the letter of `record`. A letter the broker refuses for good (it cannot ever
    /// take it) is logged and skipped, so that it cannot block the partition; one it could
    /// not take now fails the record, which is then retried.
    pub(crate) async fn dead_letter(
        &self,
        record: &Record,
        reason: &str,
    ) -> Result<(), ProcessError> {
        tracing::warn!(partition = record.partition, offset = record.offset, %reason, "dead-lettering a record");
        let letter = letter(record, reason);
        match self
            .publisher
            .publish(&self.dead_letter_topic, &record.key_text(), &letter)
            .await
        {
            Ok(_) => Ok(()),
            Err(PublishError::Rejected(why)) => {
                tracing::error!(
                    partition = record.partition,
                    offset = record.offset,
                    %reason,
                    refused = %why,
                    "the dead-letter topic refused a letter; the record is skipped"
                );
                Ok(())
            }
            Err(e @ PublishError::Unavailable(_)) => Err(e.into()),
        }
    }
}

/// The letter's JSON: `topic`, `partition`, `offset`, `timestamp`, `key`, `reason`, the value
/// (base64, cut to [`MAX_LETTER_VALUE_BYTES`]), its full size and whether it was cut.
pub fn letter(record: &Record, reason: &str) -> Vec<u8> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let (value, value_bytes, truncated) = match record.value_bytes() {
        Ok(bytes) => {
            let cut = &bytes[..bytes.len().min(MAX_LETTER_VALUE_BYTES)];
            (
                json!(engine.encode(cut)),
                bytes.len(),
                cut.len() < bytes.len(),
            )
        }
        // Not base64 or not a string: keep what was delivered, cut the same way.
        Err(_) => {
            let raw = record
                .value
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_default();
            let mut end = raw.len().min(MAX_LETTER_VALUE_BYTES);
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            (json!(&raw[..end]), raw.len(), end < raw.len())
        }
    };
    json!({
        "reason": reason,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key,
        "value": value,
        "value_bytes": value_bytes,
        "truncated": truncated,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: serde_json::Value) -> Record {
        Record {
            topic: "chat-events".into(),
            partition: 1,
            offset: 7,
            timestamp: Some(-5),
            key: Some("Mg==".into()),
            value: Some(value),
            trace: None,
        }
    }

    #[test]
    fn a_large_value_is_cut_to_fit_and_says_so() {
        let big = vec![b'x'; 760 * 1024];
        let b64 = base64::engine::general_purpose::STANDARD.encode(&big);
        let bytes = letter(&record(json!(b64)), "too large");
        assert!(bytes.len() < 400 * 1024, "{} bytes", bytes.len());
        let letter: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(letter["value_bytes"], 760 * 1024);
        assert_eq!(letter["truncated"], true);
        assert_eq!(
            (letter["partition"].clone(), letter["offset"].clone()),
            (json!(1), json!(7))
        );
        assert_eq!(letter["reason"], "too large");
    }

    #[test]
    fn a_value_that_is_not_base64_is_kept_as_delivered() {
        let letter: serde_json::Value =
            serde_json::from_slice(&letter(&record(json!({"a": 1})), "odd")).expect("json");
        assert_eq!(letter["value"], r#"{"a":1}"#);
        assert_eq!(letter["truncated"], false);
        assert_eq!(letter["timestamp"], -5);
    }
}
