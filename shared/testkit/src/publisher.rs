//! A publisher that keeps records in memory, as Kafka would partition them.

use async_trait::async_trait;
use chat_core::domain::RecordCoordinates;
use chat_core::publish::{PublishError, Publisher};

use crate::{FailSwitch, Fallible};

/// A [`Publisher`] that keeps records in memory, for unit tests of handler logic only.
/// Like the broker of the deployment, it knows its topics (a record for another fails as the
/// producer reports it), and each key maps to one of [`PARTITIONS`] partitions with its own offsets.
pub struct MemoryPublisher {
    topics: Vec<String>,
    records: std::sync::Mutex<Vec<PublishedRecord>>,
    failure: FailSwitch<PublishError>,
}

/// The partitions of each topic of a [`MemoryPublisher`].
pub const PARTITIONS: i32 = crate::contract::publisher::PARTITIONS;

impl Default for MemoryPublisher {
    fn default() -> Self {
        let kafka = chat_core::config::Config::from_lookup(|_| None)
            .map(|c| c.kafka)
            .unwrap_or_else(|e| panic!("the default configuration: {e}"));
        Self::with_topics(&[&kafka.chat_topic, &kafka.dead_letter_topic])
    }
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
    /// With the topics of the default configuration (the chat topic and its dead letters).
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_topics(topics: &[&str]) -> Self {
        Self {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            records: std::sync::Mutex::default(),
            failure: FailSwitch::default(),
        }
    }

    fn knows(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }

    fn append(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        trace: Option<&str>,
    ) -> Result<RecordCoordinates, PublishError> {
        self.failure.check()?;
        if !self.knows(topic) {
            // As the producer reports it: no leader for the topic answered in time.
            return Err(PublishError::Unavailable(format!(
                "no delivery report for {topic} in time (no such topic)"
            )));
        }
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let partition = (key.bytes().map(u32::from).sum::<u32>() % PARTITIONS as u32) as i32;
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

impl Fallible for MemoryPublisher {
    type Error = PublishError;
    fn failure(&self) -> &FailSwitch<PublishError> {
        &self.failure
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
        if !self.knows(topic) || !(0..PARTITIONS).contains(&partition) {
            return Err(PublishError::Rejected(format!(
                "{topic} has no partition {partition}"
            )));
        }
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let end = records
            .iter()
            .filter(|r| r.topic == topic && r.at.partition == partition)
            .count() as i64;
        Ok(Some(end))
    }
}
