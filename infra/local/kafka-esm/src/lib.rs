//! The local stand-in for a Lambda Kafka event source mapping (MSK or self-managed), with
//! the behaviour AWS documents:
//! - one topic, read as a member of a fixed consumer group: the group assigns the partitions
//!   (several mappings, or restarts, share them) and a restart resumes from committed offsets;
//! - a batch is up to `batch_size` records, or what arrived within the batching window, or
//!   6 MB, whichever comes first; it may hold several partitions, each in offset order;
//! - the event is AWS's JSON (`records` keyed `"topic-partition"`, base64 key and value,
//!   `headers` always present as arrays of signed bytes), sent through the Lambda Invoke API;
//! - offsets are committed only after the function succeeded; a failed batch is retried, with
//!   backoff, until it succeeds: never skipped, and nothing after it is sent meanwhile;
//! - a broker that goes away and comes back, or a rebalance, is waited out, not fatal: records
//!   of a revoked partition may be delivered again by its next owner (at-least-once), so the
//!   function must be idempotent, as on AWS.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{Message, Offset, Timestamp, TopicPartitionList};
use serde_json::{json, Value};
use shared::config::KafkaConfig;
use shared::kafka::{consumer_config, KafkaContext};

/// AWS's cap on one batch's payload.
pub const MAX_BATCH_BYTES: usize = 6 * 1024 * 1024;

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
}

impl Settings {
    /// From the environment: the shared Kafka variables plus `ESM_FUNCTION` (default
    /// `kafka-consumer`), `ESM_GROUP_ID` (`chat-consumer`), `ESM_BATCH_SIZE` (100),
    /// `ESM_BATCHING_WINDOW_MS` (0, as our deployment), `ESM_EVENT_SOURCE` (`aws:kafka`) and
    /// `LAMBDA_INVOKE_URL` (`http://127.0.0.1:9000`).
    pub fn from_env() -> Result<Self, String> {
        let config = shared::Config::from_env().map_err(|e| e.to_string())?;
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let number = |name: &str, default: &str, range: std::ops::RangeInclusive<u64>| {
            let raw = var(name, default);
            raw.parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(format!("{name}={raw} is not a whole number in {range:?}"))
        };
        Ok(Self {
            topic: config.kafka.chat_topic.clone(),
            kafka: config.kafka,
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
            )?),
            event_source: var("ESM_EVENT_SOURCE", "aws:kafka"),
            max_backoff: Duration::from_secs(10),
        })
    }
}

/// The KafkaEvent JSON for a batch, as Lambda receives it.
pub fn kafka_event(records: &[OwnedMessage], event_source: &str, bootstrap_servers: &str) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in records {
        let (timestamp, timestamp_type) = match m.timestamp() {
            Timestamp::CreateTime(t) => (t, "CREATE_TIME"),
            Timestamp::LogAppendTime(t) => (t, "LOG_APPEND_TIME"),
            Timestamp::NotAvailable => (0, "NO_TIMESTAMP_TYPE"),
        };
        let headers: Vec<Value> = m
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        let bytes: Vec<i8> = h
                            .value
                            .unwrap_or_default()
                            .iter()
                            .map(|b| *b as i8)
                            .collect();
                        json!({ h.key: bytes })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut record = json!({
            "topic": m.topic(),
            "partition": m.partition(),
            "offset": m.offset(),
            "timestamp": timestamp,
            "timestampType": timestamp_type,
            "value": m.payload().map(b64),
            "headers": headers,
        });
        if let Some(key) = m.key() {
            record["key"] = Value::from(b64(key));
        }
        grouped
            .entry(format!("{}-{}", m.topic(), m.partition()))
            .or_default()
            .push(record);
    }
    let mut event = json!({
        "eventSource": event_source,
        "bootstrapServers": bootstrap_servers,
        "records": grouped,
    });
    if event_source == "aws:kafka" {
        event["eventSourceArn"] =
            Value::from("arn:aws:kafka:us-east-1:000000000000:cluster/local/00000000-0000-0000-0000-000000000000-1");
    }
    event
}

/// Reads batches off the consumer. A record that would push a batch over
/// [`MAX_BATCH_BYTES`] is kept back and opens the next batch.
pub struct Batcher {
    consumer: StreamConsumer<KafkaContext>,
    held_back: Option<OwnedMessage>,
    errors: ErrorLog,
}

impl Batcher {
    pub fn new(consumer: StreamConsumer<KafkaContext>) -> Self {
        Self {
            consumer,
            held_back: None,
            errors: ErrorLog::default(),
        }
    }

    pub fn consumer(&self) -> &StreamConsumer<KafkaContext> {
        &self.consumer
    }

    /// The next batch: waits for one record, then takes what else arrives within the batching
    /// window (with a window of 0, what is already fetched), up to the size and byte limits.
    pub async fn next_batch(&mut self, settings: &Settings) -> Vec<OwnedMessage> {
        let first = match self.held_back.take() {
            Some(record) => record,
            None => self.next_record().await,
        };
        let mut bytes = size_of(&first);
        let mut batch = vec![first];
        let window_ends = Instant::now() + settings.batching_window;
        while batch.len() < settings.batch_size {
            let left = window_ends.saturating_duration_since(Instant::now());
            let next = match tokio::time::timeout(left, self.consumer.recv()).await {
                Ok(Ok(next)) => next.detach(),
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
    /// and waited out: librdkafka reconnects and rejoins the group by itself.
    async fn next_record(&mut self) -> OwnedMessage {
        loop {
            match self.consumer.recv().await {
                Ok(record) => {
                    self.errors.recovered();
                    return record.detach();
                }
                Err(e) => self.errors.record(&e),
            }
        }
    }
}

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

fn size_of(m: &OwnedMessage) -> usize {
    m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len)
}

/// Invokes the function until it succeeds, waiting longer after each failure.
pub async fn invoke_until_success(
    client: &reqwest::Client,
    settings: &Settings,
    event: &Value,
) -> u32 {
    let url = format!(
        "{}/2015-03-31/functions/{}/invocations",
        settings.invoke_url, settings.function
    );
    let mut failures = 0u32;
    loop {
        match client.post(&url).json(event).send().await {
            Ok(reply)
                if reply.status().is_success()
                    && !reply.headers().contains_key("x-amz-function-error") =>
            {
                return failures;
            }
            Ok(reply) => {
                let status = reply.status();
                let body = reply.text().await.unwrap_or_default();
                tracing::warn!(%status, reply = %body.chars().take(500).collect::<String>(), failures, "batch failed; retrying");
            }
            Err(e) => {
                tracing::warn!(error = %e, failures, "could not invoke the function; retrying")
            }
        }
        failures += 1;
        let backoff = Duration::from_millis(100u64.saturating_mul(1 << failures.min(10)))
            .min(settings.max_backoff);
        tokio::time::sleep(backoff).await;
    }
}

/// Commits, per partition, the offset after the batch's last record. The offsets are stored
/// first, so that librdkafka commits them again if this commit fails (its periodic commit) and
/// when the partitions are revoked; the commit itself is asynchronous and never blocks the
/// loop while a broker is away. Failures are logged by [`KafkaContext`].
pub fn commit(consumer: &StreamConsumer<KafkaContext>, batch: &[OwnedMessage]) {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let entry = next.entry((m.topic(), m.partition())).or_insert(0);
        *entry = (*entry).max(m.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
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

/// Runs the mapping until the process ends.
pub async fn run(settings: Settings) -> Result<(), String> {
    let mut batcher = Batcher::new(consumer(&settings)?);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    tracing::info!(topic = %settings.topic, group = %settings.group_id, function = %settings.function, "event source mapping started");
    loop {
        let batch = batcher.next_batch(&settings).await;
        let event = kafka_event(
            &batch,
            &settings.event_source,
            &settings.kafka.bootstrap_servers,
        );
        let started = Instant::now();
        let failures = invoke_until_success(&client, &settings, &event).await;
        commit(batcher.consumer(), &batch);
        tracing::info!(
            records = batch.len(),
            failures,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch delivered"
        );
    }
}
