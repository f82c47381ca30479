//! The stream processor, triggered by the Kafka event source with batches of chat events.
//!
//! For each partition, in offset order, it decodes every record, applies it to DynamoDB
//! idempotently (inserts in batches, edits versioned by their position in the log, deletes as
//! tombstones) and collects a frame per applied event; then it pushes each group's frames, in
//! order, to every connection of that group, connections concurrently. Records that cannot be
//! decoded or validated go to the dead-letter topic; changes the log's authority refuses are
//! dropped with a log line. Only an infrastructure failure fails the batch, which the event
//! source then retries whole: every step is safe to repeat.
//!
//! Delivery to sockets is at-least-once: a replay pushes the *current* state of each message
//! again (never an older text, never a deleted message), and clients de-duplicate by `id`.

mod apply;
mod fan_out;

use std::sync::Arc;

use aws_lambda_events::kafka::{KafkaEvent, KafkaRecord};
use serde::Serialize;
use shared::context::AppContext;
use shared::publish::{PublishError, Publisher};
use shared::push::{ApiGatewayPusher, Frame, PushError, Pusher};
use shared::store::{Store, StoreError};

/// A failure that must fail the batch, so the event source retries it.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not dead-letter a record: {0}")]
    DeadLetter(#[from] PublishError),
    #[error("could not push to a connection: {0}")]
    Push(#[from] PushError),
}

/// What one batch did, returned to the invoker (and logged).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Report {
    pub applied: usize,
    pub dead_lettered: usize,
    pub dropped: usize,
    pub pushed: usize,
    pub gone: usize,
    /// Time spent applying to DynamoDB, and pushing.
    pub apply_ms: u64,
    pub push_ms: u64,
}

pub struct Processor {
    pub store: Arc<dyn Store>,
    pub publisher: Arc<dyn Publisher>,
    /// `None` when no WebSocket API is configured: events are stored, not pushed.
    pub pusher: Option<Arc<dyn Pusher>>,
    pub dead_letter_topic: String,
}

impl Processor {
    /// Over the function's context, with a Management API client when an endpoint is set.
    pub async fn new(ctx: &AppContext) -> Self {
        let config = &ctx.config;
        let pusher: Option<Arc<dyn Pusher>> = match &config.ws_management_endpoint {
            Some(endpoint) => Some(Arc::new(
                ApiGatewayPusher::new(endpoint, &config.dynamodb.region, config.push_timeout).await,
            )),
            None => {
                tracing::warn!("WS_MANAGEMENT_ENDPOINT is not set: events are stored, not pushed");
                None
            }
        };
        Self {
            store: ctx.store.clone(),
            publisher: ctx.publisher.clone(),
            pusher,
            dead_letter_topic: config.kafka.dead_letter_topic.clone(),
        }
    }

    /// The Lambda handler: the batch's report, or the error that makes the source retry it.
    pub async fn handle(&self, event: KafkaEvent) -> Result<Report, ProcessError> {
        let report = self.process(&event).await?;
        tracing::info!(?report, "batch done");
        Ok(report)
    }

    pub async fn process(&self, event: &KafkaEvent) -> Result<Report, ProcessError> {
        let mut report = Report::default();
        let started = std::time::Instant::now();
        // Partitions hold disjoint groups: apply them concurrently, each in offset order.
        let mut partitions: Vec<&Vec<KafkaRecord>> = event.records.values().collect();
        partitions.sort_by_key(|records| records.first().map(|r| r.partition));
        let applied = futures_util::future::try_join_all(
            partitions
                .into_iter()
                .map(|records| self.apply_partition(records)),
        )
        .await?;
        let mut frames: Vec<Frame> = Vec::new();
        for (partition_frames, partition_report) in applied {
            frames.extend(partition_frames);
            report.applied += partition_report.applied;
            report.dead_lettered += partition_report.dead_lettered;
            report.dropped += partition_report.dropped;
        }
        report.apply_ms = started.elapsed().as_millis() as u64;
        if let Some(pusher) = &self.pusher {
            let (pushed, gone) = self.fan_out(pusher.as_ref(), frames).await?;
            report.pushed = pushed;
            report.gone = gone;
        }
        report.push_ms = started.elapsed().as_millis() as u64 - report.apply_ms;
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
