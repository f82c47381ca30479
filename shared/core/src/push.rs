//! Pushing to WebSocket connections, as a port: what a push can fail with, the [`Pusher`]
//! trait (the Management API client is `chat-push`'s, a fake is the test kit's), and the frames
//! themselves, as they look on the socket.

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::domain::{Connection, GroupId, Message, MessageId, Role, UserId};

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
    Deleted {
        id: MessageId,
        group_id: GroupId,
    },
    MemberAdded {
        group_id: GroupId,
        user_id: UserId,
        role: Role,
    },
    /// The member's sockets following the group get this frame last.
    MemberRemoved {
        group_id: GroupId,
        user_id: UserId,
        role: Role,
    },
    Read {
        group_id: GroupId,
        user_id: UserId,
        message_id: MessageId,
    },
    /// A member's first socket on the group opened (`online`), or their last one closed.
    Presence {
        group_id: GroupId,
        user_id: UserId,
        online: bool,
    },
    /// A member is typing: never stored, never in the log.
    Typing {
        group_id: GroupId,
        user_id: UserId,
        name: String,
    },
}

impl Frame {
    pub fn group_id(&self) -> GroupId {
        match self {
            Frame::Created(m) | Frame::Edited(m) => m.group_id,
            Frame::Deleted { group_id, .. }
            | Frame::MemberAdded { group_id, .. }
            | Frame::MemberRemoved { group_id, .. }
            | Frame::Read { group_id, .. }
            | Frame::Presence { group_id, .. }
            | Frame::Typing { group_id, .. } => *group_id,
        }
    }

    /// The user whose membership of the group this frame begins.
    pub fn adds(&self) -> Option<UserId> {
        match self {
            Frame::MemberAdded { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }

    /// The user whose membership of the group this frame ends.
    pub fn removes(&self) -> Option<UserId> {
        match self {
            Frame::MemberRemoved { user_id, .. } => Some(*user_id),
            _ => None,
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
            Frame::MemberAdded {
                group_id,
                user_id,
                role,
            } => {
                json!({"event": "member_added", "group_id": group_id, "user_id": user_id, "role": role})
            }
            Frame::MemberRemoved {
                group_id,
                user_id,
                role,
            } => {
                json!({"event": "member_removed", "group_id": group_id, "user_id": user_id, "role": role})
            }
            Frame::Read {
                group_id,
                user_id,
                message_id,
            } => {
                json!({"event": "read", "group_id": group_id, "user_id": user_id, "message_id": message_id})
            }
            Frame::Presence {
                group_id,
                user_id,
                online,
            } => {
                json!({"event": "presence", "group_id": group_id, "user_id": user_id, "online": online})
            }
            Frame::Typing {
                group_id,
                user_id,
                name,
            } => {
                json!({"event": "typing", "group_id": group_id, "user_id": user_id, "name": name})
            }
        };
        if let (Some(trace), Some(object)) = (trace, value.as_object_mut()) {
            object.insert("trace".into(), trace.to_json());
        }
        value.to_string().into_bytes()
    }
}

/// Connections pushed to at once by [`push_each`].
pub const EPHEMERAL_CONCURRENCY: usize = 64;

/// Pushes `frame` once to each of `connections`, concurrently, for frames that are neither
/// stored nor owed (presence, typing): a connection that does not take it misses it, and is
/// left to the stream processor's fan-out to forget. How many took it.
pub async fn push_each(pusher: &dyn Pusher, connections: &[Connection], frame: &[u8]) -> usize {
    use futures_util::stream::{self, StreamExt};
    // Owned ids: a stream over borrowed items trips the compiler's higher-ranked check on a
    // handler's future.
    let ids: Vec<String> = connections
        .iter()
        .map(|c| c.connection_id.clone())
        .collect();
    stream::iter(ids)
        .map(|id| async move { pusher.push(&id, frame).await })
        .buffer_unordered(EPHEMERAL_CONCURRENCY)
        .filter(|result| std::future::ready(result.is_ok()))
        .count()
        .await
}

/// Tells the group's other sockets that `user` came online or went offline, when `socket`
/// (just opened, or just closed) is the user's only socket among `group_sockets` (the group's
/// sockets, as its caller listed them). Best effort, never stored: a failure costs a presence
/// dot, not the socket.
pub async fn announce_presence(
    pusher: &dyn Pusher,
    group_sockets: Vec<Connection>,
    group_id: GroupId,
    user_id: UserId,
    socket: &str,
    online: bool,
) {
    if group_sockets
        .iter()
        .any(|c| c.user_id == Some(user_id) && c.connection_id != socket)
    {
        return;
    }
    let others: Vec<Connection> = group_sockets
        .into_iter()
        .filter(|c| c.connection_id != socket)
        .collect();
    let frame = Frame::Presence {
        group_id,
        user_id,
        online,
    }
    .to_json();
    push_each(pusher, &others, &frame).await;
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
        let user_id = UserId::new(3).expect("id");
        let added: Value = serde_json::from_slice(
            &Frame::MemberAdded {
                group_id,
                user_id,
                role: Role::Admin,
            }
            .to_json(),
        )
        .expect("json");
        assert_eq!(
            added,
            json!({"event": "member_added", "group_id": 2, "user_id": 3, "role": "admin"})
        );
        let removed = Frame::MemberRemoved {
            group_id,
            user_id,
            role: Role::Member,
        };
        assert_eq!(removed.removes(), Some(user_id));
        let read: Value = serde_json::from_slice(
            &Frame::Read {
                group_id,
                user_id,
                message_id: id,
            }
            .to_json(),
        )
        .expect("json");
        assert_eq!(
            read,
            json!({"event": "read", "group_id": 2, "user_id": 3, "message_id": 5})
        );
        let presence: Value = serde_json::from_slice(
            &Frame::Presence {
                group_id,
                user_id,
                online: false,
            }
            .to_json(),
        )
        .expect("json");
        assert_eq!(
            presence,
            json!({"event": "presence", "group_id": 2, "user_id": 3, "online": false})
        );
        let typing: Value = serde_json::from_slice(
            &Frame::Typing {
                group_id,
                user_id,
                name: "Charlie".into(),
            }
            .to_json(),
        )
        .expect("json");
        assert_eq!(
            typing,
            json!({"event": "typing", "group_id": 2, "user_id": 3, "name": "Charlie"})
        );
    }
}
