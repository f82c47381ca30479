//! Delivering one batch to the function with AWS's error handling controls for Kafka event
//! sources (provisioned mode):
//! - `FunctionResponseTypes: [ReportBatchItemFailures]`: the function's partial batch response
//!   names, per partition, the first record that failed; only it and what follows it in its
//!   partition are retried. A response that names a record not in the batch, or names none
//!   properly, fails the whole batch, as on AWS.
//! - `BisectBatchOnFunctionError`: a batch the function fails as a whole is split in two
//!   halves (in partition and offset order), each retried on its own.
//! - `MaximumRetryAttempts`: retries after the first try; when they run out the records that
//!   still fail go to the `OnFailure` topic (or are dropped when there is none, as on AWS).
//! - `MaximumRecordAgeInSeconds`: a record older than that is not sent again but set aside.
//!   Nothing after a failing record of a partition is sent before it is done or set aside.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use base64::Engine;
use chat_core::publish::Publisher;
use chat_kafka::KafkaPublisher;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Timestamp};
use serde_json::{json, Value};

use crate::{kafka_event, Settings};

/// The most of a record's value a set-aside letter carries (before base64).
pub const MAX_LETTER_VALUE_BYTES: usize = 256 * 1024;

/// What delivering a batch took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub invocations: u32,
    /// Invocations that failed, wholly or in part.
    pub failures: u32,
    /// Records sent to the on-failure topic (or dropped, without one).
    pub set_aside: usize,
}

/// Delivers `batch` until every record succeeded or was set aside.
pub async fn deliver(
    client: &reqwest::Client,
    settings: &Settings,
    on_failure: Option<&KafkaPublisher>,
    mut batch: Vec<OwnedMessage>,
) -> Delivered {
    batch.sort_by_key(|m| (m.partition(), m.offset()));
    let mut out = Delivered::default();
    let limit = settings.retry_limit();
    let mut queue: VecDeque<(Vec<OwnedMessage>, u32)> = VecDeque::from([(batch, 0)]);
    while let Some((mut records, mut retries)) = queue.pop_front() {
        loop {
            if let Some(max_age) = settings.maximum_record_age {
                let (old, fresh): (Vec<_>, Vec<_>) =
                    records.into_iter().partition(|m| older_than(m, max_age));
                out.set_aside += old.len();
                set_aside(
                    settings,
                    on_failure,
                    &old,
                    "record exceeded MaximumRecordAgeInSeconds",
                    retries,
                )
                .await;
                records = fresh;
            }
            if records.is_empty() {
                break;
            }
            out.invocations += 1;
            let (mut failed, whole) = match invoke(client, settings, &records).await {
                Ok(body) => match failed_records(settings, &body, &records) {
                    Ok(failed) => (failed, false),
                    Err(why) => {
                        tracing::warn!(%why, "the partial batch response is invalid; the batch failed");
                        (records.clone(), true)
                    }
                },
                Err(why) => {
                    tracing::warn!(%why, retries, records = records.len(), "batch failed");
                    (records.clone(), true)
                }
            };
            if failed.is_empty() {
                break;
            }
            out.failures += 1;
            if limit.is_some_and(|limit| retries >= limit) {
                out.set_aside += failed.len();
                let why = format!("retries exhausted (MaximumRetryAttempts {retries})");
                set_aside(settings, on_failure, &failed, &why, retries).await;
                break;
            }
            retries += 1;
            tokio::time::sleep(backoff(settings, retries)).await;
            if whole && settings.bisect_batch_on_function_error && failed.len() > 1 {
                let second = failed.split_off(failed.len() / 2);
                queue.push_front((second, retries));
                queue.push_front((failed, retries));
                break;
            }
            records = failed;
        }
    }
    out
}

fn backoff(settings: &Settings, retries: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << retries.min(10))).min(settings.max_backoff)
}

fn older_than(m: &OwnedMessage, max_age: Duration) -> bool {
    let at = match m.timestamp() {
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
        Timestamp::NotAvailable => return false,
    };
    let now = chrono::Utc::now().timestamp_millis();
    now.saturating_sub(at) > max_age.as_millis() as i64
}

/// Invokes the function once: its result, or why it failed.
async fn invoke(
    client: &reqwest::Client,
    settings: &Settings,
    records: &[OwnedMessage],
) -> Result<Value, String> {
    let url = format!(
        "{}/2015-03-31/functions/{}/invocations",
        settings.invoke_url, settings.function
    );
    let event = kafka_event(
        records,
        &settings.event_source,
        &settings.kafka.bootstrap_servers,
    );
    let reply = client
        .post(&url)
        .json(&event)
        .send()
        .await
        .map_err(|e| format!("could not invoke the function: {e}"))?;
    let status = reply.status();
    let function_error = reply.headers().contains_key("x-amz-function-error");
    let body = reply.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() || function_error {
        return Err(format!(
            "{status}: {}",
            body.chars().take(500).collect::<String>()
        ));
    }
    Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The records a successful invocation asks to retry: per partition named in its
/// `batchItemFailures`, the named record and those after it. An invalid response is an error.
pub fn failed_records(
    settings: &Settings,
    body: &Value,
    records: &[OwnedMessage],
) -> Result<Vec<OwnedMessage>, String> {
    if !settings.report_batch_item_failures {
        return Ok(Vec::new());
    }
    let failures = match body.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(format!("batchItemFailures is not a list: {other}")),
    };
    let mut from: BTreeMap<String, i64> = BTreeMap::new();
    for failure in failures {
        let id = failure
            .get("itemIdentifier")
            .ok_or_else(|| format!("no itemIdentifier in {failure}"))?;
        let (Some(partition), Some(offset)) = (
            id.get("partition").and_then(Value::as_str),
            id.get("offset").and_then(Value::as_i64),
        ) else {
            return Err(format!("itemIdentifier {id} lacks a partition or offset"));
        };
        if !records
            .iter()
            .any(|m| list_key(m) == partition && m.offset() == offset)
        {
            return Err(format!("itemIdentifier {id} names no record of the batch"));
        }
        let lowest = from.entry(partition.to_owned()).or_insert(offset);
        *lowest = (*lowest).min(offset);
    }
    Ok(records
        .iter()
        .filter(|m| {
            from.get(&list_key(m))
                .is_some_and(|first| m.offset() >= *first)
        })
        .cloned()
        .collect())
}

fn list_key(m: &OwnedMessage) -> String {
    format!("{}-{}", m.topic(), m.partition())
}

/// Sends records that will not be retried to the on-failure topic, retrying the publish until
/// the broker takes it (they are committed next: they must not be lost on the way).
async fn set_aside(
    settings: &Settings,
    on_failure: Option<&KafkaPublisher>,
    records: &[OwnedMessage],
    reason: &str,
    retries: u32,
) {
    let (Some(publisher), Some(topic)) = (on_failure, &settings.on_failure_topic) else {
        for m in records {
            tracing::error!(partition = m.partition(), offset = m.offset(), %reason,
                "no on-failure destination: the record is dropped, as AWS drops it");
        }
        return;
    };
    for m in records {
        let letter = letter(settings, m, reason, retries);
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let mut attempt = 0;
        while let Err(e) = publisher.publish(topic, &key, &letter).await {
            attempt += 1;
            tracing::warn!(error = %e, attempt, "could not write to the on-failure topic; retrying");
            tokio::time::sleep(backoff(settings, attempt)).await;
        }
        tracing::warn!(partition = m.partition(), offset = m.offset(), %reason, %topic,
            "a record went to the on-failure topic");
    }
}

/// The on-failure letter: where the record came from, why it was set aside, and its value
/// (base64, cut to [`MAX_LETTER_VALUE_BYTES`]).
pub fn letter(settings: &Settings, m: &OwnedMessage, reason: &str, retries: u32) -> Vec<u8> {
    let value = m.payload().unwrap_or_default();
    let cut = &value[..value.len().min(MAX_LETTER_VALUE_BYTES)];
    let timestamp = match m.timestamp() {
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
        Timestamp::NotAvailable => None,
    };
    let b64 = &base64::engine::general_purpose::STANDARD;
    json!({
        "reason": reason,
        "source": "event-source-mapping",
        "function": settings.function,
        "retries": retries,
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": timestamp,
        "key": m.key().map(|k| b64.encode(k)),
        "value": b64.encode(cut),
        "value_bytes": value.len(),
        "truncated": cut.len() < value.len(),
    })
    .to_string()
    .into_bytes()
}
