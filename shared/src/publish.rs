//! Writing chat events to the log, behind a trait: the Kafka producer (`kafka` feature) is the
//! real one, [`MemoryPublisher`] (`testing` feature) a fake for unit tests of handler logic.

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

/// Stands in for the producer of a function that never publishes.
pub struct NoPublisher;

#[async_trait]
impl Publisher for NoPublisher {
    async fn publish(&self, _: &str, _: &str, _: &[u8]) -> Result<RecordCoordinates, PublishError> {
        Err(PublishError::Rejected(
            "this function was started without a Kafka producer".into(),
        ))
    }
}

#[cfg(any(test, feature = "testing"))]
pub use memory::{MemoryPublisher, PublishedRecord};

#[cfg(any(test, feature = "testing"))]
mod memory {
    use async_trait::async_trait;

    use super::{PublishError, Publisher};
    use crate::domain::RecordCoordinates;

    /// A [`Publisher`] that keeps records in memory, for unit tests of handler logic only.
    /// Each key maps to one of four partitions with its own offsets, as in Kafka.
    #[derive(Default)]
    pub struct MemoryPublisher {
        records: std::sync::Mutex<Vec<PublishedRecord>>,
        failure: crate::testing::FailSwitch<PublishError>,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PublishedRecord {
        pub topic: String,
        pub key: String,
        pub payload: Vec<u8>,
        pub at: RecordCoordinates,
        /// The `chat-trace` header, when the record has one.
        pub trace: Option<String>,
    }

    impl MemoryPublisher {
        pub fn new() -> Self {
            Self::default()
        }

        /// From now on every publish fails with `error`.
        pub fn fail_with(&self, error: PublishError) {
            self.failure.set(Some(error));
        }

        /// Publishes succeed again.
        pub fn fail_with_nothing(&self) {
            self.failure.set(None);
        }

        fn append(
            &self,
            topic: &str,
            key: &str,
            payload: &[u8],
            trace: Option<&str>,
        ) -> Result<RecordCoordinates, PublishError> {
            self.failure.check()?;
            let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            let partition = (key.bytes().map(u32::from).sum::<u32>() % 4) as i32;
            let offset = records
                .iter()
                .filter(|r| r.topic == topic && r.at.partition == partition)
                .count() as i64;
            let at = RecordCoordinates { partition, offset };
            records.push(PublishedRecord {
                topic: topic.to_owned(),
                key: key.to_owned(),
                payload: payload.to_vec(),
                at,
                trace: trace.map(str::to_owned),
            });
            Ok(at)
        }

        pub fn records(&self) -> Vec<PublishedRecord> {
            self.records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        }
    }

    #[async_trait]
    impl Publisher for MemoryPublisher {
        async fn publish(
            &self,
            topic: &str,
            key: &str,
            payload: &[u8],
        ) -> Result<RecordCoordinates, PublishError> {
            self.append(topic, key, payload, None)
        }

        async fn publish_traced(
            &self,
            topic: &str,
            key: &str,
            payload: &[u8],
            trace: &str,
        ) -> Result<RecordCoordinates, PublishError> {
            self.append(topic, key, payload, Some(trace))
        }

        async fn partition_end(
            &self,
            topic: &str,
            partition: i32,
        ) -> Result<Option<i64>, PublishError> {
            self.failure.check()?;
            let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            let end = records
                .iter()
                .filter(|r| r.topic == topic && r.at.partition == partition)
                .count() as i64;
            Ok(Some(end))
        }
    }
}
