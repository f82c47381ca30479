//! Pushing frames to WebSocket connections through the API Gateway Management API
//! (`POST /@connections/{id}`), and the frames themselves (the `push` feature: only the stream
//! processor pushes).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
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

pub struct ApiGatewayPusher {
    client: Client,
}

impl ApiGatewayPusher {
    /// A client of the Management API at `endpoint` (the WebSocket stage's URL, or the local
    /// emulator's), bounded by `timeout` per push.
    pub async fn new(endpoint: &str, region: &str, timeout: Duration) -> Self {
        let sdk = crate::aws::sdk_config(region, timeout).await;
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

#[async_trait]
impl Pusher for ApiGatewayPusher {
    async fn push(&self, connection_id: &str, frame: &[u8]) -> Result<(), PushError> {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("GoneException") => Err(PushError::Gone),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 410 => {
                Err(PushError::Gone)
            }
            Err(e) => Err(PushError::Unavailable(crate::aws::error_chain(&e))),
        }
    }

    async fn disconnect(&self, connection_id: &str) -> Result<(), PushError> {
        let result = self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("GoneException") => Ok(()),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 410 => Ok(()),
            Err(e) => Err(PushError::Unavailable(crate::aws::error_chain(&e))),
        }
    }
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

/// A [`Pusher`] that records frames per connection, for unit tests of logic only.
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct MemoryPusher {
    pushed: std::sync::Mutex<Vec<(String, Vec<u8>)>>,
    gone: std::sync::Mutex<std::collections::HashSet<String>>,
    stuck: std::sync::Mutex<std::collections::HashSet<String>>,
    disconnected: std::sync::Mutex<Vec<String>>,
    failure: crate::testing::FailSwitch<PushError>,
}

#[cfg(any(test, feature = "testing"))]
impl MemoryPusher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes to `connection_id` answer `410 Gone` from now on.
    pub fn close(&self, connection_id: &str) {
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connection_id.to_owned());
    }

    /// Pushes to `connection_id` succeed again (a handshake finished).
    pub fn open(&self, connection_id: &str) {
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connection_id);
    }

    /// Pushes to `connection_id` fail as a client that does not read makes them fail (429).
    pub fn stick(&self, connection_id: &str) {
        self.stuck
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connection_id.to_owned());
    }

    /// The connections closed through [`Pusher::disconnect`], in order.
    pub fn disconnected(&self) -> Vec<String> {
        self.disconnected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every push fails with `error` from now on (`None`: they succeed again).
    pub fn fail_with(&self, error: Option<PushError>) {
        self.failure.set(error);
    }

    /// The frames pushed to `connection_id`, in order, as JSON.
    pub fn frames(&self, connection_id: &str) -> Vec<Value> {
        self.pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(id, _)| id == connection_id)
            .map(|(_, frame)| serde_json::from_slice(frame).unwrap_or(Value::Null))
            .collect()
    }
}

#[cfg(any(test, feature = "testing"))]
#[async_trait]
impl Pusher for MemoryPusher {
    async fn push(&self, connection_id: &str, frame: &[u8]) -> Result<(), PushError> {
        self.failure.check()?;
        if self
            .gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(connection_id)
        {
            return Err(PushError::Gone);
        }
        if self
            .stuck
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(connection_id)
        {
            return Err(PushError::Unavailable("429 Too Many Requests".into()));
        }
        self.pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((connection_id.to_owned(), frame.to_vec()));
        Ok(())
    }

    async fn disconnect(&self, connection_id: &str) -> Result<(), PushError> {
        self.failure.check()?;
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connection_id.to_owned());
        self.disconnected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(connection_id.to_owned());
        Ok(())
    }
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
