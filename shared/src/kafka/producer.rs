//! The producer every publishing function creates once per process.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::client::{client_config, KafkaContext};
use crate::config::KafkaConfig;
use crate::domain::RecordCoordinates;
use crate::publish::{PublishError, Publisher};

/// The one producer of a process: idempotent, acknowledged by all replicas, bounded in time.
pub struct KafkaPublisher {
    producer: FutureProducer<KafkaContext>,
    timeout: Duration,
}

impl KafkaPublisher {
    /// Creates the producer. It connects lazily: an unreachable broker shows up as
    /// [`PublishError::Unavailable`] on the first publish, after at most `config.timeout`.
    pub fn new(config: &KafkaConfig) -> Result<Self, PublishError> {
        let producer = client_config(config)?
            // Durability: a record counts as sent only once every in-sync replica has it.
            .set("acks", "all")
            // No duplicates or reordering from librdkafka's own retries.
            .set("enable.idempotence", "true")
            // Bound the whole send, retries included, so a request never hangs on Kafka.
            .set("message.timeout.ms", config.timeout.as_millis().to_string())
            .set("request.timeout.ms", config.timeout.as_millis().to_string())
            // A short linger lets concurrent sends share a request without adding latency.
            .set("linger.ms", "2")
            .create::<FutureProducer<KafkaContext>>()
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

    async fn partition_end(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, PublishError> {
        let (producer, topic, timeout) = (self.producer.clone(), topic.to_owned(), self.timeout);
        // librdkafka's call blocks: off the runtime's threads.
        let (_, high) = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_watermarks(&topic, partition, Timeout::After(timeout))
        })
        .await
        .map_err(|e| PublishError::Unavailable(e.to_string()))?
        .map_err(classify)?;
        Ok(Some(high))
    }
}

pub(super) fn classify(e: KafkaError) -> PublishError {
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
