//! Writing chat events to the log, as a port: the Kafka producer (`chat-kafka`) is the real
//! one, the test kit's `MemoryPublisher` a fake for unit tests of handler logic.

use async_trait::async_trait;

use crate::domain::RecordCoordinates;
use crate::error::{ChatError, Service};
use crate::events::ChatEvent;
use crate::trace::Trace;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No acknowledgement in time, or the cluster cannot take the record now: retry later.
    #[error("Kafka did not acknowledge the record: {0}")]
    Unavailable(String),
    /// Refused for a reason a retry will not fix (unknown topic, record too large, bad config).
    #[error("Kafka refused the record: {0}")]
    Rejected(String),
}

impl From<PublishError> for ChatError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Unavailable(_) => ChatError::Unavailable {
                service: Service::Kafka,
                cause: e.to_string(),
            },
            PublishError::Rejected(_) => ChatError::Internal(e.to_string()),
        }
    }
}

/// Writes records to Kafka and reports where each landed.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Returns once the record is acknowledged by all in-sync replicas.
    async fn publish(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<RecordCoordinates, PublishError>;

    /// As [`Publisher::publish`], the record carrying a [`crate::trace::RECORD_HEADER`] header
    /// with `trace`. A publisher that has no headers drops it: a trace is diagnostics.
    async fn publish_traced(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        _trace: &str,
    ) -> Result<RecordCoordinates, PublishError> {
        self.publish(topic, key, payload).await
    }

    /// Where `partition` of `topic` ends (the offset its next record gets), or `None` when
    /// this publisher cannot tell.
    async fn partition_end(
        &self,
        _topic: &str,
        _partition: i32,
    ) -> Result<Option<i64>, PublishError> {
        Ok(None)
    }
}

/// Publishes a chat event to the chat topic, keyed by its group so that a group's events stay
/// in one partition, in order.
pub async fn publish_event(
    publisher: &dyn Publisher,
    topic: &str,
    event: &ChatEvent,
    trace: Option<&Trace>,
) -> Result<RecordCoordinates, PublishError> {
    let (key, payload) = (event.key(), event.to_json());
    match trace {
        None => publisher.publish(topic, &key, &payload).await,
        Some(trace) => {
            publisher
                .publish_traced(topic, &key, &payload, &trace.to_header())
                .await
        }
    }
}
