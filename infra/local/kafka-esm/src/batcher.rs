//! The mapping's consumer: a member of the fixed group, reading batches and committing them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chat_kafka::{consumer_config, KafkaContext};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::event::stamp_fetched;
use crate::{Settings, MAX_BATCH_BYTES};

/// Reads batches off the consumer. A record that would push a batch over
/// [`MAX_BATCH_BYTES`] is kept back and opens the next batch.
pub struct Batcher {
    consumer: Arc<StreamConsumer<KafkaContext>>,
    /// The consumer in use, for the partition workers' commits (it is replaced on a rejoin).
    current: SharedConsumer,
    held_back: Option<OwnedMessage>,
    errors: ErrorLog,
}

/// The mapping's consumer as the partition workers see it: the one to commit on now.
#[derive(Clone)]
pub struct SharedConsumer(Arc<RwLock<Arc<StreamConsumer<KafkaContext>>>>);

impl SharedConsumer {
    pub fn get(&self) -> Arc<StreamConsumer<KafkaContext>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Batcher {
    pub fn new(consumer: StreamConsumer<KafkaContext>) -> Self {
        let consumer = Arc::new(consumer);
        Self {
            current: SharedConsumer(Arc::new(RwLock::new(consumer.clone()))),
            consumer,
            held_back: None,
            errors: ErrorLog::default(),
        }
    }

    pub fn consumer(&self) -> &StreamConsumer<KafkaContext> {
        &self.consumer
    }

    /// A handle that follows the consumer when it is replaced.
    pub fn shared(&self) -> SharedConsumer {
        self.current.clone()
    }

    /// The next batch: waits for one record, then takes what else arrives within the batching
    /// window (with a window of 0, what is already fetched), up to the size and byte limits.
    pub async fn next_batch(&mut self, settings: &Settings) -> Vec<OwnedMessage> {
        let first = match self.held_back.take() {
            Some(record) => record,
            None => self.next_record(settings).await,
        };
        let mut bytes = size_of(&first);
        let mut batch = vec![first];
        let window_ends = Instant::now() + settings.batching_window;
        while batch.len() < settings.batch_size {
            let left = window_ends.saturating_duration_since(Instant::now());
            let next = match tokio::time::timeout(left, self.consumer.recv()).await {
                Ok(Ok(next)) => stamp_fetched(next.detach()),
                Ok(Err(e)) => {
                    self.errors.record(&e);
                    break;
                }
                Err(_) => break,
            };
            bytes += size_of(&next);
            if bytes > MAX_BATCH_BYTES {
                self.held_back = Some(next);
                break;
            }
            batch.push(next);
        }
        batch
    }

    /// Waits for a record. The consumer's errors (a broker down, a topic missing) are logged
    /// and waited out: librdkafka reconnects by itself. After every broker connection was
    /// down, though, its group membership may never come back (seen in the fault tests: commits
    /// "waiting for coordinator" and no record for minutes after a broker restart), so once the
    /// broker answers again the consumer is replaced by a fresh member of the group, which
    /// resumes from the committed offsets (records after them come again: at-least-once).
    async fn next_record(&mut self, settings: &Settings) -> OwnedMessage {
        let mut lost_brokers = false;
        loop {
            let next = tokio::time::timeout(REJOIN_CHECK, self.consumer.recv()).await;
            match next {
                Ok(Ok(record)) => {
                    self.errors.recovered();
                    return stamp_fetched(record.detach());
                }
                Ok(Err(e)) => {
                    lost_brokers |= matches!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::AllBrokersDown)
                    );
                    self.errors.record(&e);
                }
                Err(_) if lost_brokers && self.broker_answers(settings) => {
                    match consumer(settings) {
                        Ok(fresh) => {
                            tracing::warn!("the broker is back after all connections were down: rejoining the group with a new consumer");
                            let fresh = Arc::new(fresh);
                            *self.current.0.write().unwrap_or_else(|p| p.into_inner()) =
                                fresh.clone();
                            let old = std::mem::replace(&mut self.consumer, fresh);
                            // Closing a consumer that lost its coordinator can block: elsewhere.
                            tokio::task::spawn_blocking(move || drop(old));
                            lost_brokers = false;
                        }
                        Err(e) => tracing::warn!(error = %e, "could not create a new consumer"),
                    }
                }
                Err(_) => {}
            }
        }
    }

    /// Whether the broker answers a metadata request for the topic now (a blocking call of
    /// at most 2 s, made only while nothing is consumed anyway).
    fn broker_answers(&self, settings: &Settings) -> bool {
        self.consumer
            .fetch_metadata(Some(&settings.topic), Duration::from_secs(2))
            .is_ok()
    }
}

/// How often a consumer that lost every broker checks whether it can rejoin.
const REJOIN_CHECK: Duration = Duration::from_secs(5);

/// The consumer's errors come once per reconnection attempt while a broker is away: the first
/// is logged, then one line every [`ErrorLog::EVERY`] with the count.
#[derive(Default)]
struct ErrorLog {
    since_recovery: u64,
    last_logged: Option<Instant>,
}

impl ErrorLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn record(&mut self, e: &KafkaError) {
        self.since_recovery += 1;
        if self
            .last_logged
            .is_none_or(|at| at.elapsed() >= Self::EVERY)
        {
            self.last_logged = Some(Instant::now());
            tracing::warn!(error = %e, errors = self.since_recovery, "Kafka consumer error; waiting for the broker");
        }
    }

    fn recovered(&mut self) {
        if self.since_recovery > 0 {
            tracing::info!(errors = self.since_recovery, "consuming again");
        }
        *self = Self::default();
    }
}

pub(crate) fn size_of(m: &OwnedMessage) -> usize {
    m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len)
}

/// Commits, per partition, the offset after the batch's last record. The offsets are stored
/// first, so that librdkafka commits them again if this commit fails (its periodic commit) and
/// when the partitions are revoked; the commit itself is asynchronous and never blocks the
/// loop while a broker is away. Failures are logged by [`KafkaContext`].
pub fn commit(consumer: &StreamConsumer<KafkaContext>, batch: &[OwnedMessage]) {
    commit_offsets(consumer, &next_offsets(batch));
}

/// Per partition, the offset after the batch's last record: what committing the batch commits.
pub fn next_offsets(batch: &[OwnedMessage]) -> BTreeMap<(String, i32), i64> {
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for m in batch {
        let entry = next
            .entry((m.topic().to_owned(), m.partition()))
            .or_insert(0);
        *entry = (*entry).max(m.offset() + 1);
    }
    next
}

/// Commits offsets from [`next_offsets`] (see [`commit`]).
pub fn commit_offsets(
    consumer: &StreamConsumer<KafkaContext>,
    next: &BTreeMap<(String, i32), i64>,
) {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), &offset) in next {
        let (topic, partition) = (topic.as_str(), *partition);
        if let Err(e) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::warn!(error = %e, topic, partition, "cannot name an offset to commit");
        }
    }
    // Storing fails for a partition revoked meanwhile: its next owner delivers it again.
    if let Err(e) = consumer.store_offsets(&list) {
        tracing::warn!(error = %e, "could not store offsets (partitions revoked?); they may be delivered again");
        return;
    }
    if let Err(e) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(error = %e, "could not request a commit; librdkafka retries it");
    }
}

/// The consumer the mapping polls with: a member of the fixed group, subscribed to the topic.
/// Where the group has committed no offset it starts at the beginning (AWS's `TRIM_HORIZON`).
pub fn consumer(settings: &Settings) -> Result<StreamConsumer<KafkaContext>, String> {
    let consumer: StreamConsumer<KafkaContext> =
        consumer_config(&settings.kafka, &settings.group_id)
            .map_err(|e| e.to_string())?
            // Offsets are stored after each successful batch (never on receipt), and commits of
            // stored offsets are retried every second and made on revocation.
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            .create()
            .map_err(|e| e.to_string())?;
    consumer
        .subscribe(&[&settings.topic])
        .map_err(|e| format!("cannot subscribe to {}: {e}", settings.topic))?;
    Ok(consumer)
}
