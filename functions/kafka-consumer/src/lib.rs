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

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use lambda_runtime::LambdaEvent;
use serde_json::json;
use shared::config::Config;
use shared::domain::{
    refusal, Change, GroupId, Message, MessageId, MessageText, RecordCoordinates, User, UserId,
};
use shared::events::{ChatEvent, IncomingEvent};
use shared::kafka::{KafkaPublisher, PublishError, Publisher};
use shared::push::{ApiGatewayPusher, Frame, PushError, Pusher};
use shared::store::dynamodb::DynamoStore;
use shared::store::{DeleteOutcome, EditOutcome, MessageEdit, Store, StoreError, StoredMessage};

/// Connections pushed to at once.
const PUSH_CONCURRENCY: usize = 32;

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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
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
    pub async fn from_env() -> Result<Self, lambda_runtime::Error> {
        let config = Config::from_env()?;
        let pusher: Option<Arc<dyn Pusher>> = match &config.ws_management_endpoint {
            Some(endpoint) => Some(Arc::new(
                ApiGatewayPusher::new(endpoint, &config.dynamodb.region, config.push_timeout).await,
            )),
            None => {
                tracing::warn!("WS_MANAGEMENT_ENDPOINT is not set: events are stored, not pushed");
                None
            }
        };
        Ok(Self {
            store: Arc::new(DynamoStore::from_config(&config.dynamodb).await),
            publisher: Arc::new(KafkaPublisher::new(&config.kafka)?),
            pusher,
            dead_letter_topic: config.kafka.dead_letter_topic.clone(),
        })
    }

    /// The Lambda handler.
    pub async fn handle(
        &self,
        event: LambdaEvent<KafkaEvent>,
    ) -> Result<serde_json::Value, lambda_runtime::Error> {
        let report = self.process(&event.payload).await.inspect_err(|e| {
            tracing::error!(error = %e, "batch failed; it will be retried");
        })?;
        tracing::info!(?report, "batch done");
        Ok(json!({
            "applied": report.applied,
            "dead_lettered": report.dead_lettered,
            "dropped": report.dropped,
            "pushed": report.pushed,
            "gone": report.gone,
            "apply_ms": report.apply_ms,
            "push_ms": report.push_ms,
        }))
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

    async fn apply_partition(
        &self,
        records: &[KafkaRecord],
    ) -> Result<(Vec<Frame>, Report), ProcessError> {
        let mut records: Vec<&KafkaRecord> = records.iter().collect();
        records.sort_by_key(|r| r.offset);
        let mut users = UserCache::default();
        let mut frames = Vec::new();
        let mut report = Report::default();
        // Consecutive sends are inserted together; an edit or delete waits for the sends
        // before it, since it may refer to them.
        let mut sends: Vec<Message> = Vec::new();
        for record in records {
            let decoded = decode(record);
            let event = match decoded {
                Ok(event) => event,
                Err(reason) => {
                    self.dead_letter(record, &reason).await?;
                    report.dead_lettered += 1;
                    continue;
                }
            };
            let coordinates = RecordCoordinates {
                partition: record.partition as i32,
                offset: record.offset,
            };
            let record_id = match MessageId::from_coordinates(coordinates) {
                Ok(id) => id,
                Err(e) => {
                    self.dead_letter(record, &e.0).await?;
                    report.dead_lettered += 1;
                    continue;
                }
            };
            match event {
                IncomingEvent::LegacySend { user_id, message } => {
                    match self
                        .new_message(
                            &mut users,
                            record_id,
                            user_id,
                            None,
                            message,
                            *record.timestamp,
                        )
                        .await?
                    {
                        Ok(m) => sends.push(m),
                        Err(reason) => {
                            self.dead_letter(record, &reason).await?;
                            report.dead_lettered += 1;
                        }
                    }
                }
                IncomingEvent::Event(ChatEvent::MessageSent {
                    group_id,
                    user_id,
                    message,
                    sent_at,
                    ..
                }) => {
                    match self
                        .new_message(
                            &mut users,
                            record_id,
                            user_id,
                            Some(group_id),
                            message,
                            sent_at,
                        )
                        .await?
                    {
                        Ok(m) => sends.push(m),
                        Err(reason) => {
                            self.dead_letter(record, &reason).await?;
                            report.dead_lettered += 1;
                        }
                    }
                }
                IncomingEvent::Event(change) => {
                    report.applied += self.insert(&mut sends, &mut frames).await?;
                    match self.apply_change(&mut users, change, record_id).await? {
                        Some(frame) => {
                            report.applied += 1;
                            frames.push(frame);
                        }
                        None => report.dropped += 1,
                    }
                }
            }
        }
        report.applied += self.insert(&mut sends, &mut frames).await?;
        Ok((frames, report))
    }

    /// The message a send creates, or why the send is invalid (unknown user, wrong group).
    async fn new_message(
        &self,
        users: &mut UserCache,
        id: MessageId,
        user_id: UserId,
        group_id: Option<GroupId>,
        text: MessageText,
        sent_at: DateTime<Utc>,
    ) -> Result<Result<Message, String>, ProcessError> {
        let Some(user) = users.get(self.store.as_ref(), user_id).await? else {
            return Ok(Err(format!("user {user_id} does not exist")));
        };
        let group_id = group_id.unwrap_or(user.group_id);
        if !user.belongs_to(group_id) {
            return Ok(Err(format!(
                "user {user_id} is not a member of group {group_id}"
            )));
        }
        Ok(Ok(Message {
            id,
            user_id,
            name: user.name.clone(),
            group_id,
            message: text,
            can_edit: user.can_edit,
            can_delete: user.can_delete,
            created_at: sent_at,
            edited_at: None,
        }))
    }

    /// Stores pending sends in one batch call; each yields a `created` frame with the
    /// message as stored (a replay re-announces it unless it has since been deleted).
    async fn insert(
        &self,
        sends: &mut Vec<Message>,
        frames: &mut Vec<Frame>,
    ) -> Result<usize, ProcessError> {
        if sends.is_empty() {
            return Ok(0);
        }
        let outcomes = self.store.insert_messages(sends).await?;
        let count = sends.len();
        for (message, outcome) in sends.drain(..).zip(outcomes) {
            match outcome {
                None => frames.push(Frame::Created(message)),
                Some(StoredMessage::Live(current)) => frames.push(Frame::Created(current)),
                Some(StoredMessage::Deleted { .. }) => {}
            }
        }
        Ok(count)
    }

    /// Applies an edit or delete if the log's authority allows it; the frame to push, or
    /// `None` when it was dropped.
    async fn apply_change(
        &self,
        users: &mut UserCache,
        change: ChatEvent,
        version: MessageId,
    ) -> Result<Option<Frame>, ProcessError> {
        let (message_id, group_id, user_id, kind) = match &change {
            ChatEvent::MessageEdited {
                message_id,
                group_id,
                user_id,
                ..
            } => (*message_id, *group_id, *user_id, Change::Edit),
            ChatEvent::MessageDeleted {
                message_id,
                group_id,
                user_id,
                ..
            } => (*message_id, *group_id, *user_id, Change::Delete),
            ChatEvent::MessageSent { .. } => return Ok(None),
        };
        let Some(user) = users.get(self.store.as_ref(), user_id).await? else {
            tracing::warn!(%message_id, %user_id, "dropped a change by an unknown user");
            return Ok(None);
        };
        let author = match self.store.get_message(message_id).await? {
            Some(StoredMessage::Live(m)) if m.group_id == group_id => m.user_id,
            Some(StoredMessage::Deleted {
                group_id: g,
                user_id: author,
                ..
            }) if g == group_id => author,
            _ => {
                tracing::warn!(%message_id, %group_id, "dropped a change to an unknown message");
                return Ok(None);
            }
        };
        if let Some(reason) = refusal(user, author, message_id, kind) {
            tracing::warn!(%message_id, %user_id, %reason, "dropped a change the sender may not make");
            return Ok(None);
        }
        match change {
            ChatEvent::MessageEdited {
                new_text,
                edited_at,
                ..
            } => {
                let edit = MessageEdit {
                    group_id,
                    message_id,
                    new_text,
                    edited_at,
                    version: version.get(),
                };
                match self.store.edit_message(&edit).await? {
                    EditOutcome::Applied(m) => Ok(Some(Frame::Edited(m))),
                    // A replay: announce the message as it stands, never the older text.
                    EditOutcome::AlreadyApplied => {
                        match self.store.get_message(message_id).await? {
                            Some(StoredMessage::Live(current)) => Ok(Some(Frame::Edited(current))),
                            _ => Ok(None),
                        }
                    }
                    EditOutcome::Deleted | EditOutcome::NotFound => Ok(None),
                }
            }
            ChatEvent::MessageDeleted { deleted_at, .. } => {
                match self
                    .store
                    .delete_message(group_id, message_id, deleted_at)
                    .await?
                {
                    DeleteOutcome::Deleted | DeleteOutcome::AlreadyDeleted => {
                        Ok(Some(Frame::Deleted {
                            id: message_id,
                            group_id,
                        }))
                    }
                    DeleteOutcome::NotFound => Ok(None),
                }
            }
            ChatEvent::MessageSent { .. } => Ok(None),
        }
    }

    async fn dead_letter(&self, record: &KafkaRecord, reason: &str) -> Result<(), ProcessError> {
        tracing::warn!(partition = record.partition, offset = record.offset, %reason, "dead-lettering a record");
        let letter = json!({
            "reason": reason,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp.timestamp_millis(),
            "key": record.key,
            "value": record.value,
        });
        let key = record
            .key
            .as_deref()
            .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .unwrap_or_default();
        self.publisher
            .publish(&self.dead_letter_topic, &key, letter.to_string().as_bytes())
            .await?;
        Ok(())
    }

    /// Pushes each group's frames, in order, to each of its connections; connections run
    /// concurrently (bounded). A closed connection is forgotten.
    async fn fan_out(
        &self,
        pusher: &dyn Pusher,
        frames: Vec<Frame>,
    ) -> Result<(usize, usize), ProcessError> {
        let mut by_group: Vec<(GroupId, Vec<Vec<u8>>)> = Vec::new();
        for frame in frames {
            let group = frame.group_id();
            match by_group.iter_mut().find(|(g, _)| *g == group) {
                Some((_, list)) => list.push(frame.to_json()),
                None => by_group.push((group, vec![frame.to_json()])),
            }
        }
        let mut deliveries = Vec::new();
        for (group, frames) in &by_group {
            for connection in self.store.connections_for_group(*group).await? {
                deliveries.push((connection.connection_id, frames));
            }
        }
        let results: Vec<(usize, bool)> = stream::iter(deliveries)
            .map(|(connection_id, frames)| async move {
                let mut pushed = 0;
                for frame in frames {
                    match pusher.push(&connection_id, frame).await {
                        Ok(()) => pushed += 1,
                        Err(PushError::Gone) => {
                            self.store.delete_connection(&connection_id).await?;
                            return Ok::<_, ProcessError>((pushed, true));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok((pushed, false))
            })
            .buffer_unordered(PUSH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok((
            results.iter().map(|(pushed, _)| pushed).sum(),
            results.iter().filter(|(_, gone)| *gone).count(),
        ))
    }
}

fn decode(record: &KafkaRecord) -> Result<IncomingEvent, String> {
    let value = record.value.as_deref().ok_or("record has no value")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|e| format!("record value is not base64: {e}"))?;
    IncomingEvent::decode(&bytes).map_err(|e| e.to_string())
}

/// Users looked up once per batch.
#[derive(Default)]
struct UserCache(HashMap<UserId, Option<User>>);

impl UserCache {
    async fn get(&mut self, store: &dyn Store, id: UserId) -> Result<Option<&User>, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry(id) {
            slot.insert(store.get_user(id).await?);
        }
        Ok(self.0.get(&id).and_then(Option::as_ref))
    }
}

#[cfg(test)]
mod tests;
