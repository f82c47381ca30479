//! Pushing to WebSocket connections, as a port: what a push can fail with, the [`Pusher`]
//! trait (the Management API client is `chat-push`'s, a fake is the test kit's), and the frames
//! themselves, as they look on the socket.

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::domain::{GroupId, Message, MessageId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The connection is closed (`410 Gone`): forget it.
    #[error("connection is gone")]
    Gone,
    /// The API did not answer in time or could not take the frame now: retry later.
    #[error("the WebSocket API did not take the frame: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Pusher: Send + Sync {
    async fn push(&self, connection_id: &str, frame: &[u8]) -> Result<(), PushError>;
    /// Closes the connection (`DELETE /@connections/{id}`): one that cannot keep up is cut
    /// off rather than left holding the others back. Closing a closed one is no error.
    async fn disconnect(&self, connection_id: &str) -> Result<(), PushError>;
}

/// What an applied event looks like on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Created(Message),
    Edited(Message),
    Deleted { id: MessageId, group_id: GroupId },
}

impl Frame {
    pub fn group_id(&self) -> GroupId {
        match self {
            Frame::Created(m) | Frame::Edited(m) => m.group_id,
            Frame::Deleted { group_id, .. } => *group_id,
        }
    }

    /// The JSON text frame: the message object plus `event` for a new or edited message (as
    /// the original pushed it), `{"id", "deleted": true, "event": "deleted", "group_id"}` for a
    /// deletion.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_json_traced(None)
    }

    /// [`Frame::to_json`], with `"trace"` holding a traced message's stamps (see
    /// [`crate::trace`]).
    pub fn to_json_traced(&self, trace: Option<&crate::trace::Trace>) -> Vec<u8> {
        let mut value = match self {
            Frame::Created(m) | Frame::Edited(m) => {
                let mut value = serde_json::to_value(m).unwrap_or(Value::Null);
                if let Some(object) = value.as_object_mut() {
                    let event = if matches!(self, Frame::Created(_)) {
                        "created"
                    } else {
                        "edited"
                    };
                    object.insert("event".into(), Value::from(event));
                }
                value
            }
            Frame::Deleted { id, group_id } => {
                json!({"id": id, "deleted": true, "event": "deleted", "group_id": group_id})
            }
        };
        if let (Some(trace), Some(object)) = (trace, value.as_object_mut()) {
            object.insert("trace".into(), trace.to_json());
        }
        value.to_string().into_bytes()
    }
}

/// How logs name a connection: a connection id lets whoever holds it push to or close the
/// socket through the Management API, so logs carry a tag that correlates lines, not the id.
pub fn log_tag(connection_id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    connection_id.hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MessageText, UserId};

    #[test]
    fn frames_have_the_shapes_of_the_design() {
        let id = MessageId::new(5).expect("id");
        let group_id = GroupId::new(2).expect("id");
        let deleted: Value =
            serde_json::from_slice(&Frame::Deleted { id, group_id }.to_json()).expect("json");
        assert_eq!(
            deleted,
            json!({"id": 5, "deleted": true, "event": "deleted", "group_id": 2})
        );
        let message = Message {
            id,
            user_id: UserId::new(3).expect("id"),
            name: "Charlie".into(),
            group_id,
            message: MessageText::new("hi").expect("text"),
            can_edit: true,
            can_delete: false,
            created_at: chrono::DateTime::from_timestamp(0, 0).expect("time"),
            edited_at: None,
        };
        let created: Value =
            serde_json::from_slice(&Frame::Created(message.clone()).to_json()).expect("json");
        assert_eq!(created["event"], "created");
        assert_eq!(created["message"], "hi");
        assert_eq!(created["name"], "Charlie");
        let edited: Value =
            serde_json::from_slice(&Frame::Edited(message).to_json()).expect("json");
        assert_eq!(edited["event"], "edited");
        assert!(created.get("trace").is_none());
        let trace = crate::trace::Trace::parse("received=1;stored=2");
        let traced: Value =
            serde_json::from_slice(&Frame::Deleted { id, group_id }.to_json_traced(Some(&trace)))
                .expect("json");
        assert_eq!(traced["trace"], json!({"received": 1, "stored": 2}));
        assert_eq!(traced["event"], "deleted");
    }
}
