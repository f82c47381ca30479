//! The local stand-in for a Lambda Kafka event source mapping (MSK or self-managed), with
//! the behaviour AWS documents:
//! - one topic, a fixed consumer group id, so a restart resumes from committed offsets;
//! - a batch is up to `batch_size` records, or what arrived within the batching window, or
//!   6 MB, whichever comes first; it may hold several partitions, each in offset order;
//! - the event is AWS's JSON (`records` keyed `"topic-partition"`, base64 key and value,
//!   `headers` always present as arrays of signed bytes), sent through the Lambda Invoke API;
//! - offsets are committed only after the function succeeded; a failed batch is retried, with
//!   backoff, until it succeeds: never skipped, and nothing after it is sent meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, OwnedMessage};
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

/// The next batch: waits for one record, then takes what else arrives within the batching
/// window (with a window of 0, what is already fetched), up to the size and byte limits.
pub async fn next_batch(
    consumer: &StreamConsumer<KafkaContext>,
    settings: &Settings,
) -> Result<Vec<OwnedMessage>, String> {
    let first = consumer.recv().await.map_err(|e| e.to_string())?;
    let mut bytes = size_of(&first);
    let mut batch = vec![first.detach()];
    let window_ends = Instant::now() + settings.batching_window;
    while batch.len() < settings.batch_size {
        let left = window_ends.saturating_duration_since(Instant::now());
        let next = match tokio::time::timeout(left, consumer.recv()).await {
            Ok(next) => next.map_err(|e| e.to_string())?,
            Err(_) => break,
        };
        bytes += size_of(&next);
        if bytes > MAX_BATCH_BYTES {
            // Rewind so the record opens the next batch instead.
            consumer
                .seek(
                    next.topic(),
                    next.partition(),
                    Offset::Offset(next.offset()),
                    Duration::from_secs(5),
                )
                .map_err(|e| e.to_string())?;
            break;
        }
        batch.push(next.detach());
    }
    Ok(batch)
}

fn size_of(m: &BorrowedMessage) -> usize {
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

/// Commits, per partition, the offset after the batch's last record.
pub fn commit(
    consumer: &StreamConsumer<KafkaContext>,
    batch: &[OwnedMessage],
) -> Result<(), String> {
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for m in batch {
        let entry = next
            .entry((m.topic().to_owned(), m.partition()))
            .or_insert(0);
        *entry = (*entry).max(m.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(&topic, partition, Offset::Offset(offset))
            .map_err(|e| e.to_string())?;
    }
    consumer
        .commit(&list, CommitMode::Sync)
        .map_err(|e| e.to_string())
}

/// The consumer the mapping polls with. It takes every partition of the topic itself and
/// starts each at the group's committed offset (the beginning where none is: AWS's
/// `TRIM_HORIZON`), committing under the fixed group id. A mapping is a single reader here,
/// so it needs no group membership, and so never waits on a rebalance: with Tansu, a member
/// left over from before a broker restart held a joining consumer up indefinitely.
pub fn consumer(settings: &Settings) -> Result<StreamConsumer<KafkaContext>, String> {
    let consumer: StreamConsumer<KafkaContext> =
        consumer_config(&settings.kafka, &settings.group_id)
            .map_err(|e| e.to_string())?
            .create()
            .map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(&settings.topic), timeout)
        .map_err(|e| format!("cannot read the metadata of {}: {e}", settings.topic))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == settings.topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0)
        .ok_or(format!("topic {} does not exist", settings.topic))?;
    let mut wanted = TopicPartitionList::new();
    for p in 0..partitions {
        wanted.add_partition(&settings.topic, p);
    }
    let committed = consumer.committed_offsets(wanted, timeout).map_err(|e| {
        format!(
            "cannot read the committed offsets of {}: {e}",
            settings.group_id
        )
    })?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        let offset = match committed
            .find_partition(&settings.topic, p)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) if o >= 0 => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        assignment
            .add_partition_offset(&settings.topic, p, offset)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
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
    let consumer = consumer(&settings)?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    tracing::info!(topic = %settings.topic, group = %settings.group_id, function = %settings.function, "event source mapping started");
    loop {
        let batch = next_batch(&consumer, &settings).await?;
        let event = kafka_event(
            &batch,
            &settings.event_source,
            &settings.kafka.bootstrap_servers,
        );
        let started = Instant::now();
        let failures = invoke_until_success(&client, &settings, &event).await;
        commit(&consumer, &batch)?;
        tracing::info!(
            records = batch.len(),
            failures,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch delivered"
        );
    }
}
