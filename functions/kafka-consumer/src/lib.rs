//! The stream processor, triggered by the Kafka event source with batches of chat events.
//!
//! For each partition, in offset order, it decodes every record, applies it to DynamoDB
//! idempotently (inserts that never overwrite, each send once per `client_message_id`, edits
//! versioned by their position in the log, deletes as tombstones) and collects a frame per
//! applied event; then it pushes each group's frames, in order, to every connection of that
//! group, connections concurrently. Records that can never be applied go to the dead-letter
//! topic; changes the log's authority refuses are dropped with a log line.
//!
//! An infrastructure failure stops only its partition, at the record it met: the partial batch
//! response names that record, and the event source retries it and what follows it. A
//! connection that cannot take its frames costs only itself: it is retried briefly, then cut
//! off. Delivery to sockets is at-least-once: a replay pushes the *current* state of each
//! message again (never an older text, never a deleted message), and clients de-duplicate by
//! `id`.

mod apply;
pub mod batch;
pub mod dead_letter;
mod fan_out;

use std::sync::Arc;

use chat_core::config::Config;
use chat_core::publish::{PublishError, Publisher};
use chat_core::push::Pusher;
use chat_core::store::{
    AppliedSends, ConnectionReader, ConnectionWriter, Directory, MembershipWriter, MessageReader,
    MessageWriter, StoreError,
};
use chat_core::KnownUsers;
use serde::Serialize;

use batch::{Batch, BatchItemFailure, BatchResponse, ItemIdentifier, Record};

/// A failure that must fail a record (and what follows it in its partition), so the event
/// source retries it.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not dead-letter a record: {0}")]
    DeadLetter(#[from] PublishError),
}

/// What one batch did (logged).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Report {
    pub applied: usize,
    pub dead_lettered: usize,
    pub dropped: usize,
    /// Records of a send already stored from an earlier record (a retried publish).
    pub duplicates: usize,
    /// Entries without a partition or offset: logged and skipped.
    pub unreadable: usize,
    pub pushed: usize,
    /// Connections found closed (410), and ones cut off for not taking their frames.
    pub gone: usize,
    pub cut_off: usize,
    /// Sockets closed for being past their end (their token expired).
    pub expired: usize,
    /// Records of partitions that stopped at a failure, left for the retry.
    pub failed_partitions: usize,
    /// Time spent applying to DynamoDB, and pushing.
    pub apply_ms: u64,
    pub push_ms: u64,
    /// The Kafka timestamp of the batch's oldest record (milliseconds since the epoch).
    pub oldest_record_ms: Option<i64>,
}

impl Report {
    /// The batch's CloudWatch figures, its lag measured to `now_ms`.
    pub fn figures(&self, now_ms: i64) -> chat_lambda::metrics::BatchFigures {
        let millis = |ms: i64| std::time::Duration::from_millis(ms.max(0) as u64);
        chat_lambda::metrics::BatchFigures {
            applied: self.applied as u64,
            dead_lettered: self.dead_lettered as u64,
            pushes_sent: self.pushed as u64,
            pushes_gone: self.gone as u64,
            pushes_failed: self.cut_off as u64,
            duration: millis((self.apply_ms + self.push_ms) as i64),
            lag: self.oldest_record_ms.map(|at| millis(now_ms - at)),
        }
    }
}

/// A batch's outcome: its report, and per failed partition the first record to retry.
#[derive(Debug, Default)]
pub struct Outcome {
    pub report: Report,
    pub failures: Vec<ItemIdentifier>,
}

/// What the stream processor may do with the store: everything it applies (messages, sends,
/// memberships and read marks, forgetting gone connections, subscribing and unsubscribing
/// all-groups sockets as their users join and leave), and reading the directory and the
/// connections; not changing users or groups, or claiming sends.
pub trait ProcessorStore:
    Directory
    + MessageReader
    + MessageWriter
    + MembershipWriter
    + AppliedSends
    + ConnectionReader
    + ConnectionWriter
{
}

impl<T> ProcessorStore for T where
    T: Directory
        + MessageReader
        + MembershipWriter
        + MessageWriter
        + AppliedSends
        + ConnectionReader
        + ConnectionWriter
{
}

pub struct Processor {
    pub store: Arc<dyn ProcessorStore>,
    pub publisher: Arc<dyn Publisher>,
    /// `None` when no WebSocket API is configured: events are stored, not pushed.
    pub pusher: Option<Arc<dyn Pusher>>,
    pub dead_letter_topic: String,
    /// Users read in earlier batches, for a short while: the directory changes rarely and by
    /// hand, and a batch should not wait on it.
    pub users: KnownUsers,
    /// Whether records in the original app's shape are applied (`bare-records` in
    /// `chat_core::compat`), else dead-lettered.
    pub bare_records: bool,
}

impl Processor {
    /// Over the DynamoDB store, the Kafka producer (for the dead-letter topic) and, when an
    /// endpoint is set, the Management API.
    pub async fn from_config(config: Config) -> Result<Self, PublishError> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        let publisher = chat_kafka::KafkaPublisher::new(&config.kafka)?;
        let pusher = chat_push::ApiGatewayPusher::port_from_config(&config).await;
        if pusher.is_none() {
            tracing::warn!("WS_MANAGEMENT_ENDPOINT is not set: events are stored, not pushed");
        }
        Ok(Self {
            store: Arc::new(store),
            publisher: Arc::new(publisher),
            pusher,
            dead_letter_topic: config.kafka.dead_letter_topic.clone(),
            users: KnownUsers::default(),
            bare_records: config.compat.bare_records,
        })
    }

    /// The Lambda handler: the partial batch response, or the error that makes the source
    /// retry the whole batch (when nothing of it could be done).
    pub async fn handle(&self, batch: Batch) -> Result<BatchResponse, ProcessError> {
        let outcome = self.process(&batch).await?;
        tracing::info!(report = ?outcome.report, failures = ?outcome.failures, "batch done");
        chat_lambda::metrics::batch_done(
            &outcome
                .report
                .figures(chrono::Utc::now().timestamp_millis()),
        );
        Ok(BatchResponse {
            batch_item_failures: outcome
                .failures
                .into_iter()
                .map(|item_identifier| BatchItemFailure { item_identifier })
                .collect(),
        })
    }

    pub async fn process(&self, batch: &Batch) -> Result<Outcome, ProcessError> {
        let mut report = Report::default();
        let started = std::time::Instant::now();
        let started_us = chat_core::trace::now_us();
        let mut partitions: Vec<Vec<Record>> = Vec::new();
        for (list_key, raw) in &batch.records {
            let mut records = Vec::with_capacity(raw.len());
            for entry in raw {
                match Record::read(entry, list_key) {
                    Some(mut record) => {
                        if let Some(trace) = &mut record.trace {
                            trace.stamp_at("started", started_us);
                        }
                        records.push(record);
                    }
                    None => {
                        tracing::error!(%list_key, %entry, "skipped an entry with no partition or offset");
                        report.unreadable += 1;
                    }
                }
            }
            records.sort_by_key(|r| r.offset);
            let oldest = records.iter().filter_map(|r| r.timestamp).min();
            report.oldest_record_ms = report.oldest_record_ms.into_iter().chain(oldest).min();
            partitions.push(records);
        }
        partitions.sort_by_key(|records| records.first().map(|r| r.partition));
        // Partitions hold disjoint groups: apply them concurrently, each in offset order.
        let applied = futures_util::future::join_all(
            partitions
                .iter()
                .map(|records| self.apply_partition(records)),
        )
        .await;
        let mut frames: Vec<fan_out::Outgoing> = Vec::new();
        let mut failures = Vec::new();
        let mut first_error = None;
        let mut nothing_done = !applied.is_empty();
        for (records, partition) in partitions.iter().zip(applied) {
            frames.extend(partition.frames);
            report.applied += partition.report.applied;
            report.dead_lettered += partition.report.dead_lettered;
            report.dropped += partition.report.dropped;
            report.duplicates += partition.report.duplicates;
            match partition.failed {
                Some((at, error)) => {
                    tracing::error!(partition = %at.partition, offset = at.offset, %error,
                        "a partition stopped at a record; it and what follows are retried");
                    nothing_done &= records.first().map(|r| r.offset) == Some(at.offset);
                    report.failed_partitions += 1;
                    failures.push(at);
                    first_error.get_or_insert(error);
                }
                None => nothing_done = false,
            }
        }
        // Nothing could be done (a store or broker outage): fail as a whole, which is right
        // whether or not the source reads partial responses.
        if let (true, Some(error)) = (nothing_done, first_error) {
            return Err(error);
        }
        report.apply_ms = started.elapsed().as_millis() as u64;
        if let Some(pusher) = &self.pusher {
            let fan_out = self.fan_out(pusher.as_ref(), frames).await?;
            report.pushed = fan_out.pushed;
            report.gone = fan_out.gone;
            report.cut_off = fan_out.cut_off;
            report.expired = fan_out.expired;
        }
        report.push_ms = started.elapsed().as_millis() as u64 - report.apply_ms;
        Ok(Outcome { report, failures })
    }
}

#[cfg(test)]
mod tests;
