//! Kafka clients: the producer every publishing function creates once per process, topic
//! administration for local set-up, and the consumer settings our consumers share.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::config::{KafkaConfig, KafkaSecurity};
use crate::domain::RecordCoordinates;
use crate::error::{ChatError, Service};
use crate::events::ChatEvent;

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
}

/// Publishes a chat event to the chat topic, keyed by its group so that a group's events stay
/// in one partition, in order.
pub async fn publish_event(
    publisher: &dyn Publisher,
    topic: &str,
    event: &ChatEvent,
) -> Result<RecordCoordinates, PublishError> {
    publisher
        .publish(topic, &event.key(), &event.to_json())
        .await
}

/// Settings every client of ours shares: where the brokers are and how to reach them.
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        // Fail a connection attempt fast rather than after librdkafka's default 30 s.
        .set(
            "socket.connection.setup.timeout.ms",
            config.timeout.as_millis().clamp(1000, 30_000).to_string(),
        )
        // librdkafka logs every failed connection attempt; keep one line a minute.
        .set("log.connection.close", "false");
    match config.security {
        KafkaSecurity::Plaintext => c.set("security.protocol", "plaintext"),
    };
    c
}

/// The one producer of a process: idempotent, acknowledged by all replicas, bounded in time.
pub struct KafkaPublisher {
    producer: FutureProducer,
    timeout: Duration,
}

impl KafkaPublisher {
    /// Creates the producer. It connects lazily: an unreachable broker shows up as
    /// [`PublishError::Unavailable`] on the first publish, after at most `config.timeout`.
    pub fn new(config: &KafkaConfig) -> Result<Self, PublishError> {
        let producer = client_config(config)
            // Durability: a record counts as sent only once every in-sync replica has it.
            .set("acks", "all")
            // No duplicates or reordering from librdkafka's own retries.
            .set("enable.idempotence", "true")
            // Bound the whole send, retries included, so a request never hangs on Kafka.
            .set("message.timeout.ms", config.timeout.as_millis().to_string())
            .set("request.timeout.ms", config.timeout.as_millis().to_string())
            // A short linger lets concurrent sends share a request without adding latency.
            .set("linger.ms", "2")
            .create::<FutureProducer>()
            .map_err(|e| PublishError::Rejected(e.to_string()))?;
        Ok(Self {
            producer,
            timeout: config.timeout,
        })
    }

    /// Waits until queued records are delivered (or `timeout` passes); for process exit.
    pub fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        self.producer
            .flush(Timeout::After(timeout))
            .map_err(classify)
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<RecordCoordinates, PublishError> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        let send = self.producer.send(record, Timeout::After(self.timeout));
        // message.timeout.ms bounds delivery; this outer bound guards against anything else.
        let delivery = tokio::time::timeout(self.timeout + Duration::from_secs(1), send)
            .await
            .map_err(|_| PublishError::Unavailable("no delivery report in time".into()))?
            .map_err(|(e, _)| classify(e))?;
        Ok(RecordCoordinates {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }
}

fn classify(e: KafkaError) -> PublishError {
    use RDKafkaErrorCode as C;
    let retryable = matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageTimedOut
                | C::RequestTimedOut
                | C::OperationTimedOut
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::QueueFull
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::NetworkException
                | C::BrokerNotAvailable
        )
    );
    if retryable {
        PublishError::Unavailable(e.to_string())
    } else {
        PublishError::Rejected(e.to_string())
    }
}

/// Settings for a consumer group member that commits offsets itself, after processing.
pub fn consumer_config(config: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut c = client_config(config);
    c.set("group.id", group_id)
        // Commit only what was processed (at-least-once).
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Tansu sleeps for part of fetch.wait.max.ms even when data is ready: keep it low.
        .set("fetch.wait.max.ms", "5")
        // Shorter sessions timed out at Tansu's coordinator under load.
        .set("session.timeout.ms", "30000");
    c
}

/// Fails, saying why, unless a broker answers a metadata request within `timeout`.
pub fn check_broker(config: &KafkaConfig, timeout: Duration) -> Result<(), String> {
    let consumer: BaseConsumer = client_config(config).create().map_err(|e| e.to_string())?;
    consumer
        .fetch_metadata(None, Timeout::After(timeout))
        .map(|_| ())
        .map_err(|e| format!("no broker answered within {timeout:?}: {e}"))
}

/// Creates each `(topic, partitions)` that does not exist yet. Existing topics are left as
/// they are (their partition count is not changed: that would move groups between partitions).
pub async fn ensure_topics(
    config: &KafkaConfig,
    topics: &[(&str, i32)],
) -> Result<(), PublishError> {
    let admin: AdminClient<DefaultClientContext> = client_config(config)
        .create()
        .map_err(|e| PublishError::Rejected(e.to_string()))?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(config.timeout))
        .operation_timeout(Some(config.timeout));
    let results = tokio::time::timeout(
        config.timeout + Duration::from_secs(1),
        admin.create_topics(&new_topics, &options),
    )
    .await
    .map_err(|_| PublishError::Unavailable("CreateTopics got no answer in time".into()))?
    .map_err(classify)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(PublishError::Rejected(format!(
                    "could not create topic {topic}: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// How many partitions `topic` has, from the broker's metadata.
pub fn partition_count(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<usize, PublishError> {
    let consumer: BaseConsumer = client_config(config)
        .create()
        .map_err(|e| PublishError::Rejected(e.to_string()))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Timeout::After(timeout))
        .map_err(classify)?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .ok_or_else(|| PublishError::Rejected(format!("topic {topic} does not exist")))
}

/// A [`Publisher`] that keeps records in memory, for unit tests of handler logic only.
/// Each key maps to one of four partitions with its own offsets, as in Kafka.
#[derive(Default)]
pub struct MemoryPublisher {
    records: std::sync::Mutex<Vec<PublishedRecord>>,
    failure: std::sync::Mutex<Option<PublishError>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub at: RecordCoordinates,
}

impl MemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on every publish fails with `error`.
    pub fn fail_with(&self, error: PublishError) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
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
        if let Some(e) = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(e);
        }
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
        });
        Ok(at)
    }
}
