//! The local stand-in for a Lambda Kafka event source mapping (MSK or self-managed), with
//! the behaviour AWS documents:
//! - one topic, read as a member of a fixed consumer group: the group assigns the partitions
//!   (several mappings, or restarts, share them) and a restart resumes from committed offsets;
//! - a batch is up to `batch_size` records, or what arrived within the batching window, or
//!   6 MB, whichever comes first, in offset order; partitions are delivered concurrently, one
//!   invocation at a time per partition (AWS's may also put several partitions in one event:
//!   the function takes both shapes);
//! - the event is AWS's JSON (`records` keyed `"topic-partition"`, base64 key and value,
//!   `headers` always present as arrays of signed bytes), sent through the Lambda Invoke API;
//! - AWS's error handling controls (provisioned mode), with the template's values as defaults:
//!   `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`, `BisectBatchOnFunctionError`,
//!   `FunctionResponseTypes: [ReportBatchItemFailures]` and a Kafka topic as the `OnFailure`
//!   destination (see [`delivery`]); nothing after a failing record of a partition is sent
//!   meanwhile, and offsets are committed only once each record succeeded or went to the
//!   on-failure topic;
//! - the invocation's timeout is the function's (`Timeout` in the template), so a batch is never
//!   retried while a first run of it may still be writing;
//! - a broker that goes away and comes back, or a rebalance, is waited out, not fatal: records
//!   of a revoked partition may be delivered again by its next owner (at-least-once), so the
//!   function must be idempotent, as on AWS.

pub mod batcher;
pub mod delivery;
pub mod event;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::config::KafkaConfig;
use chat_kafka::KafkaPublisher;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio::sync::{mpsc, Semaphore};

pub use batcher::{commit, commit_offsets, consumer, next_offsets, Batcher, SharedConsumer};
pub use delivery::{deliver, Delivered};
pub use event::kafka_event;

/// AWS's cap on one batch's payload.
pub const MAX_BATCH_BYTES: usize = 6 * 1024 * 1024;
/// The stream processor's `Timeout` in `infra/template.yaml` (a template test keeps them equal).
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);
/// The template's `MaximumRetryAttempts`: retries of a failing batch before its records go to
/// the on-failure topic. With backoff capped at [`Settings::max_backoff`], hours of a store
/// outage are waited out before anything is set aside.
pub const MAXIMUM_RETRY_ATTEMPTS: i64 = 1000;

#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub group_id: String,
    pub function: String,
    pub invoke_url: String,
    pub batch_size: usize,
    pub batching_window: Duration,
    /// `aws:kafka` (MSK) or `SelfManagedKafka`.
    pub event_source: String,
    /// Longest wait between two tries of a failing batch.
    pub max_backoff: Duration,
    /// The invocation's timeout: the function's.
    pub function_timeout: Duration,
    /// `MaximumRetryAttempts`: -1 is infinite (10 when an on-failure topic is set, as AWS).
    pub maximum_retry_attempts: i64,
    /// `MaximumRecordAgeInSeconds`: older records are not sent, but set aside (-1: no limit).
    pub maximum_record_age: Option<Duration>,
    pub bisect_batch_on_function_error: bool,
    /// `FunctionResponseTypes` holds `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// The `OnFailure` destination, a topic of the same cluster.
    pub on_failure_topic: Option<String>,
    /// Written once the group first assigned this mapping its partitions: from then on a
    /// record sent is delivered (the local stack waits for it before it opens the API).
    pub ready_file: Option<std::path::PathBuf>,
}

impl Settings {
    /// From the environment: the shared Kafka variables plus `ESM_FUNCTION` (default
    /// `kafka-consumer`), `ESM_GROUP_ID` (`chat-consumer`), `ESM_BATCH_SIZE` (100),
    /// `ESM_BATCHING_WINDOW_MS` (0, as our deployment), `ESM_EVENT_SOURCE` (`aws:kafka`),
    /// `LAMBDA_INVOKE_URL` (`http://127.0.0.1:9000`), and the error handling controls with the
    /// template's values: `ESM_FUNCTION_TIMEOUT_SECONDS` (60), `ESM_MAXIMUM_RETRY_ATTEMPTS`
    /// (1000), `ESM_MAXIMUM_RECORD_AGE_SECONDS` (-1), `ESM_BISECT_BATCH_ON_FUNCTION_ERROR`
    /// (true), `ESM_FUNCTION_RESPONSE_TYPES` (`ReportBatchItemFailures`; empty for none) and
    /// `ESM_ON_FAILURE_TOPIC` (the dead-letter topic; empty for none).
    pub fn from_env() -> Result<Self, String> {
        let config = chat_core::Config::from_env().map_err(|e| e.to_string())?;
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let number = |name: &str, default: &str, range: std::ops::RangeInclusive<i64>| {
            let raw = var(name, default);
            raw.parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(format!("{name}={raw} is not a whole number in {range:?}"))
        };
        let flag = |name: &str, default: &str| match var(name, default).as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("{name}={other} is neither true nor false")),
        };
        let age = number("ESM_MAXIMUM_RECORD_AGE_SECONDS", "-1", -1..=604_800)?;
        if (0..60).contains(&age) {
            return Err("ESM_MAXIMUM_RECORD_AGE_SECONDS is -1 or 60 to 604800, as on AWS".into());
        }
        let on_failure = var("ESM_ON_FAILURE_TOPIC", &config.kafka.dead_letter_topic);
        if on_failure == config.kafka.chat_topic {
            return Err("the on-failure topic must not be the source topic (as on AWS)".into());
        }
        Ok(Self {
            topic: config.kafka.chat_topic.clone(),
            group_id: var("ESM_GROUP_ID", "chat-consumer"),
            function: var("ESM_FUNCTION", "kafka-consumer"),
            invoke_url: var("LAMBDA_INVOKE_URL", "http://127.0.0.1:9000")
                .trim_end_matches('/')
                .to_owned(),
            batch_size: number("ESM_BATCH_SIZE", "100", 1..=10_000)? as usize,
            batching_window: Duration::from_millis(number(
                "ESM_BATCHING_WINDOW_MS",
                "0",
                0..=300_000,
            )? as u64),
            event_source: var("ESM_EVENT_SOURCE", "aws:kafka"),
            max_backoff: Duration::from_secs(10),
            function_timeout: Duration::from_secs(number(
                "ESM_FUNCTION_TIMEOUT_SECONDS",
                "60",
                1..=900,
            )? as u64),
            maximum_retry_attempts: number(
                "ESM_MAXIMUM_RETRY_ATTEMPTS",
                &MAXIMUM_RETRY_ATTEMPTS.to_string(),
                -1..=10_000,
            )?,
            maximum_record_age: u64::try_from(age).ok().map(Duration::from_secs),
            bisect_batch_on_function_error: flag("ESM_BISECT_BATCH_ON_FUNCTION_ERROR", "true")?,
            report_batch_item_failures: var(
                "ESM_FUNCTION_RESPONSE_TYPES",
                "ReportBatchItemFailures",
            )
            .split(',')
            .any(|t| t.trim() == "ReportBatchItemFailures"),
            on_failure_topic: Some(on_failure).filter(|t| !t.is_empty()),
            ready_file: std::env::var_os("ESM_READY_FILE")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            kafka: config.kafka,
        })
    }

    /// Retries allowed after the first try; `None` is unbounded.
    pub fn retry_limit(&self) -> Option<u32> {
        match (self.maximum_retry_attempts, &self.on_failure_topic) {
            (-1, Some(_)) => Some(10),
            (-1, None) => None,
            (n, _) => u32::try_from(n).ok(),
        }
    }
}

/// Runs the mapping until Ctrl-C or SIGTERM.
pub async fn run_until_stopped(settings: Settings) -> Result<(), String> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        result = run(settings) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
    }
}

/// Writes `path` once the group has assigned the consumer partitions. Looks every 50 ms, and
/// only until then: an idle mapping does not poll.
async fn announce_ready(consumer: SharedConsumer, path: std::path::PathBuf) {
    use rdkafka::consumer::Consumer;
    loop {
        if consumer.get().assignment().is_ok_and(|a| a.count() > 0) {
            if let Err(e) = std::fs::write(&path, b"ready\n") {
                tracing::error!(error = %e, path = %path.display(), "cannot write the ready file");
            }
            tracing::info!("partitions assigned: the event source is ready");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records read ahead of their delivery, per batch-size: the reading stops while this many
/// batches' worth wait (memory stays bounded whatever a partition's function does).
pub const BUFFERED_BATCHES: usize = 4;

/// Runs the mapping until the process ends. Only a setting it cannot use ends it early: Kafka
/// errors are waited out.
///
/// Partitions are delivered concurrently, as AWS's event source does: each partition has a
/// worker that invokes the function with that partition's records, one invocation at a time,
/// in offset order; what arrives meanwhile waits and forms its next batch. So a slow batch of
/// one group's partition does not hold back the others.
pub async fn run(settings: Settings) -> Result<(), String> {
    let settings = Arc::new(settings);
    let mut batcher = Batcher::new(consumer(&settings)?);
    if let Some(path) = settings.ready_file.clone() {
        tokio::spawn(announce_ready(batcher.shared(), path));
    }
    let on_failure = match &settings.on_failure_topic {
        Some(_) => Some(Arc::new(
            KafkaPublisher::new(&settings.kafka).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(settings.function_timeout)
        .build()
        .map_err(|e| e.to_string())?;
    tracing::info!(topic = %settings.topic, group = %settings.group_id, function = %settings.function,
        retries = ?settings.retry_limit(), on_failure = ?settings.on_failure_topic, "event source mapping started");
    let capacity = settings.batch_size * BUFFERED_BATCHES;
    let room = Arc::new(Semaphore::new(capacity));
    let mut workers: HashMap<i32, mpsc::UnboundedSender<Vec<OwnedMessage>>> = HashMap::new();
    loop {
        let batch = batcher.next_batch(&settings).await;
        let mut by_partition: BTreeMap<i32, Vec<OwnedMessage>> = BTreeMap::new();
        for record in batch {
            by_partition
                .entry(record.partition())
                .or_default()
                .push(record);
        }
        for (partition, records) in by_partition {
            // Waits while the workers hold too many records; a batch never holds more than
            // the capacity.
            let permits = u32::try_from(records.len().min(capacity)).unwrap_or(u32::MAX);
            match room.clone().acquire_many_owned(permits).await {
                Ok(permit) => permit.forget(),
                Err(_) => return Err("the read-ahead semaphore closed".into()),
            }
            let worker = workers.entry(partition).or_insert_with(|| {
                let (send, receive) = mpsc::unbounded_channel();
                let worker = PartitionWorker {
                    settings: settings.clone(),
                    client: client.clone(),
                    on_failure: on_failure.clone(),
                    consumer: batcher.shared(),
                    room: room.clone(),
                };
                tokio::spawn(worker.run(receive));
                send
            });
            if worker.send(records).is_err() {
                return Err(format!("the worker of partition {partition} ended"));
            }
        }
    }
}

/// Delivers one partition's records, a batch at a time, and commits each batch once done.
struct PartitionWorker {
    settings: Arc<Settings>,
    client: reqwest::Client,
    on_failure: Option<Arc<KafkaPublisher>>,
    consumer: SharedConsumer,
    room: Arc<Semaphore>,
}

impl PartitionWorker {
    async fn run(self, mut incoming: mpsc::UnboundedReceiver<Vec<OwnedMessage>>) {
        let mut waiting: VecDeque<OwnedMessage> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                match incoming.recv().await {
                    Some(records) => waiting.extend(records),
                    None => return,
                }
            }
            while let Ok(records) = incoming.try_recv() {
                waiting.extend(records);
            }
            let batch = self.take_batch(&mut waiting);
            let started = Instant::now();
            let (records, offsets) = (batch.len(), next_offsets(&batch));
            let delivered = deliver(
                &self.client,
                &self.settings,
                self.on_failure.as_deref(),
                batch,
            )
            .await;
            commit_offsets(&self.consumer.get(), &offsets);
            self.room.add_permits(records);
            tracing::info!(
                partition = offsets.keys().next().map(|(_, p)| *p),
                records,
                invocations = delivered.invocations,
                failures = delivered.failures,
                set_aside = delivered.set_aside,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "batch delivered"
            );
        }
    }

    /// The next batch from what waits: up to the batch size and AWS's payload cap (one record
    /// at least, whatever its size).
    fn take_batch(&self, waiting: &mut VecDeque<OwnedMessage>) -> Vec<OwnedMessage> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = waiting.front() {
            let size = batcher::size_of(next);
            if batch.len() >= self.settings.batch_size
                || (!batch.is_empty() && bytes + size > MAX_BATCH_BYTES)
            {
                break;
            }
            bytes += size;
            batch.extend(waiting.pop_front());
        }
        batch
    }
}
