//! A [`Pusher`] that records frames per connection, for unit tests of logic only. As the
//! Management API, it knows only connections that were opened ([`MemoryPusher::open`]): a push
//! to any other is `410 Gone`.

use async_trait::async_trait;
use chat_core::push::{PushError, Pusher};
use serde_json::Value;

use crate::{FailSwitch, Fallible};

#[derive(Default)]
pub struct MemoryPusher {
    pushed: std::sync::Mutex<Vec<(String, Vec<u8>)>>,
    open: std::sync::Mutex<std::collections::HashSet<String>>,
    stuck: std::sync::Mutex<std::collections::HashSet<String>>,
    disconnected: std::sync::Mutex<Vec<String>>,
    failure: FailSwitch<PushError>,
}

impl MemoryPusher {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client closed `connection_id`: pushes to it answer `410 Gone` from now on.
    pub fn close(&self, connection_id: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connection_id);
    }

    /// A client opened `connection_id` (its handshake finished): pushes to it succeed.
    pub fn open(&self, connection_id: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connection_id.to_owned());
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

    /// The frames pushed to `connection_id`, in order, as sent.
    pub fn raw_frames(&self, connection_id: &str) -> Vec<Vec<u8>> {
        self.pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(id, _)| id == connection_id)
            .map(|(_, frame)| frame.clone())
            .collect()
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

impl Fallible for MemoryPusher {
    type Error = PushError;
    fn failure(&self) -> &FailSwitch<PushError> {
        &self.failure
    }
}

#[async_trait]
impl Pusher for MemoryPusher {
    async fn push(&self, connection_id: &str, frame: &[u8]) -> Result<(), PushError> {
        self.failure.check()?;
        if !self
            .open
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
        self.close(connection_id);
        self.disconnected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(connection_id.to_owned());
        Ok(())
    }
}
