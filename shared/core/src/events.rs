//! Chat events as they travel on Kafka (topic `CHAT_TOPIC`, key = group id).
//!
//! Producers write JSON envelopes tagged by `type`. The stream processor also accepts a bare
//! record in the original app's shape, `{"user_id": 1, "message": "..."}`, as
//! `kafka-console-producer` would send it: a send by that user to the user's group.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{GroupId, MessageId, MessageText, Role, UserId, ValidationError};

/// Largest record value we try to decode; anything bigger is not one of ours.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChatEvent {
    MessageSent {
        group_id: GroupId,
        user_id: UserId,
        message: MessageText,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
        sent_at: DateTime<Utc>,
    },
    MessageEdited {
        message_id: MessageId,
        group_id: GroupId,
        user_id: UserId,
        new_text: MessageText,
        edited_at: DateTime<Utc>,
    },
    MessageDeleted {
        message_id: MessageId,
        group_id: GroupId,
        user_id: UserId,
        deleted_at: DateTime<Utc>,
    },
    /// `by` adds `user_id` to the group with `role`, or gives a member that role.
    MemberAdded {
        group_id: GroupId,
        user_id: UserId,
        role: Role,
        by: UserId,
        at: DateTime<Utc>,
    },
    /// `by` removes `user_id` from the group; `by == user_id` is leaving.
    MemberRemoved {
        group_id: GroupId,
        user_id: UserId,
        by: UserId,
        at: DateTime<Utc>,
    },
    /// `user_id` has read the group up to `message_id`.
    ReadMarked {
        group_id: GroupId,
        user_id: UserId,
        message_id: MessageId,
        at: DateTime<Utc>,
    },
}

impl ChatEvent {
    /// The group whose partition orders this event; also the record key.
    pub fn group_id(&self) -> GroupId {
        match self {
            ChatEvent::MessageSent { group_id, .. }
            | ChatEvent::MessageEdited { group_id, .. }
            | ChatEvent::MessageDeleted { group_id, .. }
            | ChatEvent::MemberAdded { group_id, .. }
            | ChatEvent::MemberRemoved { group_id, .. }
            | ChatEvent::ReadMarked { group_id, .. } => *group_id,
        }
    }

    /// The Kafka record key: the group id in decimal.
    pub fn key(&self) -> String {
        self.group_id().to_string()
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A derived Serialize over strings, numbers and timestamps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A record of the chat topic, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingEvent {
    Event(ChatEvent),
    /// The original app's shape: the group is the user's, looked up when applied.
    LegacySend {
        user_id: UserId,
        message: MessageText,
    },
}

/// Why a record could not be understood; it goes to the dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no value")]
    Empty,
    #[error("record value is {0} bytes; the limit is {MAX_EVENT_BYTES}")]
    TooLarge(usize),
    #[error("record value is not JSON: {0}")]
    NotJson(String),
    #[error("record is not a chat event: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyRecord {
    user_id: UserId,
    message: MessageText,
}

impl IncomingEvent {
    pub fn decode(value: &[u8]) -> Result<Self, DecodeError> {
        if value.is_empty() {
            return Err(DecodeError::Empty);
        }
        if value.len() > MAX_EVENT_BYTES {
            return Err(DecodeError::TooLarge(value.len()));
        }
        let json: serde_json::Value =
            serde_json::from_slice(value).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        let invalid = |e: serde_json::Error| DecodeError::Invalid(e.to_string());
        if json.get("type").is_some() {
            serde_json::from_value(json)
                .map(IncomingEvent::Event)
                .map_err(invalid)
        } else {
            let legacy: LegacyRecord = serde_json::from_value(json).map_err(invalid)?;
            Ok(IncomingEvent::LegacySend {
                user_id: legacy.user_id,
                message: legacy.message,
            })
        }
    }
}

impl From<ValidationError> for DecodeError {
    fn from(e: ValidationError) -> Self {
        DecodeError::Invalid(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn envelopes_round_trip_through_json() {
        let events = [
            ChatEvent::MessageSent {
                group_id: GroupId::new(1).expect("id"),
                user_id: UserId::new(2).expect("id"),
                message: MessageText::new("hi").expect("text"),
                client_message_id: Some("abc".into()),
                sent_at: at("2026-01-01T00:00:00Z"),
            },
            ChatEvent::MessageEdited {
                message_id: MessageId::new(9).expect("id"),
                group_id: GroupId::new(1).expect("id"),
                user_id: UserId::new(2).expect("id"),
                new_text: MessageText::new("hey").expect("text"),
                edited_at: at("2026-01-01T00:00:01Z"),
            },
            ChatEvent::MessageDeleted {
                message_id: MessageId::new(9).expect("id"),
                group_id: GroupId::new(1).expect("id"),
                user_id: UserId::new(2).expect("id"),
                deleted_at: at("2026-01-01T00:00:02Z"),
            },
            ChatEvent::MemberAdded {
                group_id: GroupId::new(1).expect("id"),
                user_id: UserId::new(3).expect("id"),
                role: Role::Admin,
                by: UserId::new(2).expect("id"),
                at: at("2026-01-01T00:00:03Z"),
            },
            ChatEvent::MemberRemoved {
                group_id: GroupId::new(1).expect("id"),
                user_id: UserId::new(3).expect("id"),
                by: UserId::new(3).expect("id"),
                at: at("2026-01-01T00:00:04Z"),
            },
            ChatEvent::ReadMarked {
                group_id: GroupId::new(1).expect("id"),
                user_id: UserId::new(2).expect("id"),
                message_id: MessageId::new(9).expect("id"),
                at: at("2026-01-01T00:00:05Z"),
            },
        ];
        for event in events {
            let decoded = IncomingEvent::decode(&event.to_json()).expect("decodes");
            assert_eq!(decoded, IncomingEvent::Event(event.clone()));
            assert_eq!(event.key(), "1");
        }
    }

    #[test]
    fn the_wire_shape_is_a_type_tagged_envelope() {
        let json = br#"{"type":"message_sent","group_id":2,"user_id":3,"message":"yo","sent_at":"2026-01-01T00:00:00Z"}"#;
        match IncomingEvent::decode(json) {
            Ok(IncomingEvent::Event(ChatEvent::MessageSent { group_id, .. })) => {
                assert_eq!(group_id.get(), 2)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_bare_record_of_the_original_app_is_a_legacy_send() {
        let decoded = IncomingEvent::decode(br#"{"user_id": 1, "message": "Hello, Kafka!"}"#);
        assert_eq!(
            decoded,
            Ok(IncomingEvent::LegacySend {
                user_id: UserId::new(1).expect("id"),
                message: MessageText::new("Hello, Kafka!").expect("text"),
            })
        );
    }

    #[test]
    fn records_that_are_not_chat_events_are_refused_with_a_reason() {
        let long = format!(r#"{{"user_id":1,"message":"{}"}}"#, "x".repeat(5000));
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "no value"),
            (b"not json", "not JSON"),
            (b"[1,2]", "not a chat event"),
            (br#"{"user_id": 0, "message": "x"}"#, "user_id"),
            (br#"{"user_id": 1, "message": "   "}"#, "empty"),
            (long.as_bytes(), "limit is 4096"),
            (
                br#"{"type":"message_exploded","group_id":1}"#,
                "unknown variant",
            ),
            (
                br#"{"type":"message_deleted","group_id":1,"user_id":1}"#,
                "missing field",
            ),
            (&[0xff, 0xfe, b'{'], "not JSON"),
        ];
        for (value, why) in cases {
            let err = IncomingEvent::decode(value).expect_err(why);
            assert!(err.to_string().contains(why), "{err} should mention {why}");
        }
        let huge = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            IncomingEvent::decode(&huge),
            Err(DecodeError::TooLarge(_))
        ));
    }
}
