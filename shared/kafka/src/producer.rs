//! The producer every publishing function creates once per process.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;
use tokio::sync::oneshot;

use super::client::{client_config, KafkaContext};
use chat_core::config::KafkaConfig;
use chat_core::domain::RecordCoordinates;
use chat_core::publish::{PublishError, Publisher};

/// Publishes that time out in a row before the producer is replaced by a new one.
pub const REPLACE_AFTER_TIMEOUTS: u32 = 2;
/// How long one call of the delivery thread waits for librdkafka's events. A delivery report
/// is handled as soon as it arrives, whatever this is; it bounds only how late a replaced
/// producer's thread notices that it should end. rust-rdkafka's own producers poll every
/// 100 ms and spin through the last fraction of each millisecond-rounded wait: about 1 % of a
/// core per idle producer, 14 % for the sixteen of `make dev`.
const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// The outcome of one record, from its delivery report.
type Delivery = Result<RecordCoordinates, KafkaError>;

impl ProducerContext for KafkaContext {
    type DeliveryOpaque = Box<oneshot::Sender<Delivery>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let delivery = match result {
            Ok(message) => Ok(RecordCoordinates {
                partition: message.partition(),
                offset: message.offset(),
            }),
            Err((error, _)) => Err(error.clone()),
        };
        // The publish may have given up waiting: nobody to tell.
        let _ = reply.send(delivery);
    }
}

/// A producer and the thread that serves its events (delivery reports, token refreshes). The
/// thread ends, dropping the producer, once this is dropped.
struct Served {
    producer: Arc<BaseProducer<KafkaContext>>,
    stop: Arc<AtomicBool>,
}

impl Served {
    fn start(producer: BaseProducer<KafkaContext>) -> Result<Self, PublishError> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let (served, stopped) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kafka-deliveries".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    served.poll(DELIVERY_POLL);
                }
            })
            .map_err(|e| PublishError::Rejected(format!("no thread for the producer: {e}")))?;
        Ok(Self { producer, stop })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The one producer of a process: idempotent, acknowledged by all replicas, bounded in time.
///
/// After a broker pause or restart, librdkafka's idempotent producer can stay wedged (every
/// record times out, long after the broker is back: seen in the fault tests), so a producer
/// whose publishes time out [`REPLACE_AFTER_TIMEOUTS`] times in a row is replaced by a fresh
/// one (a new producer id). The records it may have written are covered as any unknown outcome
/// is: the send keeps its claim, and the stream processor stores a send once.
pub struct KafkaPublisher {
    config: KafkaConfig,
    producer: RwLock<Arc<Served>>,
    timeouts_in_a_row: AtomicU32,
    timeout: Duration,
}

impl KafkaPublisher {
    /// Creates the producer. It connects lazily: an unreachable broker shows up as
    /// [`PublishError::Unavailable`] on the first publish, after at most `config.timeout`.
    pub fn new(config: &KafkaConfig) -> Result<Self, PublishError> {
        Ok(Self {
            producer: RwLock::new(Self::producer(config)?),
            config: config.clone(),
            timeouts_in_a_row: AtomicU32::new(0),
            timeout: config.timeout,
        })
    }

    fn producer(config: &KafkaConfig) -> Result<Arc<Served>, PublishError> {
        let producer = client_config(config)?
            // Durability: a record counts as sent only once every in-sync replica has it.
            .set("acks", "all")
            // No duplicates or reordering from librdkafka's own retries.
            .set("enable.idempotence", "true")
            // Bound the whole send, retries included, so a request never hangs on Kafka.
            .set("message.timeout.ms", config.timeout.as_millis().to_string())
            .set("request.timeout.ms", config.timeout.as_millis().to_string())
            // No linger: a Lambda instance handles one request at a time, so there is nothing
            // to batch with, and waiting (librdkafka's default is 5 ms) is pure latency.
            .set("linger.ms", "0")
            .create::<BaseProducer<KafkaContext>>()
            .map_err(|e| PublishError::Rejected(e.to_string()))?;
        Served::start(producer).map(Arc::new)
    }

    fn current(&self) -> Arc<Served> {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts a publish's outcome; replaces the producer after too many timeouts in a row.
    fn settle(&self, outcome: &Result<RecordCoordinates, PublishError>) {
        match outcome {
            Err(PublishError::Unavailable(_)) => {
                let in_a_row = self.timeouts_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
                if in_a_row < REPLACE_AFTER_TIMEOUTS {
                    return;
                }
                match Self::producer(&self.config) {
                    Ok(fresh) => {
                        let old = std::mem::replace(
                            &mut *self.producer.write().unwrap_or_else(|p| p.into_inner()),
                            fresh,
                        );
                        self.timeouts_in_a_row.store(0, Ordering::SeqCst);
                        tracing::warn!(
                            in_a_row,
                            "replaced a Kafka producer whose publishes kept timing out"
                        );
                        // Its delivery thread destroys the client (which blocks) once the
                        // publishes still holding it are done.
                        drop(old);
                    }
                    Err(e) => tracing::warn!(error = %e, "could not create a new Kafka producer"),
                }
            }
            _ => self.timeouts_in_a_row.store(0, Ordering::SeqCst),
        }
    }

    /// Waits until queued records are delivered (or `timeout` passes); for process exit.
    pub fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        self.current()
            .producer
            .flush(Timeout::After(timeout))
            .map_err(classify)
    }
}

impl KafkaPublisher {
    async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        trace: Option<&str>,
    ) -> Result<RecordCoordinates, PublishError> {
        let served = self.current();
        let (reply, delivered) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(reply))
            .key(key)
            .payload(payload);
        if let Some(trace) = trace {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: chat_core::trace::RECORD_HEADER,
                value: Some(trace),
            }));
        }
        let outcome = match served.producer.send(record) {
            // Not queued (e.g. the queue is full): nothing was written.
            Err((e, _)) => Err(classify(e)),
            // message.timeout.ms bounds delivery; this outer bound guards against anything else.
            Ok(()) => {
                match tokio::time::timeout(self.timeout + Duration::from_secs(1), delivered).await {
                    Err(_) | Ok(Err(_)) => Err(PublishError::Unavailable(
                        "no delivery report in time".into(),
                    )),
                    Ok(Ok(delivery)) => delivery.map_err(classify),
                }
            }
        };
        self.settle(&outcome);
        if outcome.is_ok() {
            chat_core::usage::kafka_bytes(key.len() + payload.len() + trace.map_or(0, str::len));
        }
        outcome
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
        self.send(topic, key, payload, None).await
    }

    async fn publish_traced(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        trace: &str,
    ) -> Result<RecordCoordinates, PublishError> {
        self.send(topic, key, payload, Some(trace)).await
    }

    async fn partition_end(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, PublishError> {
        let (served, topic, timeout) = (self.current(), topic.to_owned(), self.timeout);
        // librdkafka's call blocks: off the runtime's threads.
        let (_, high) = tokio::task::spawn_blocking(move || {
            served
                .producer
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
