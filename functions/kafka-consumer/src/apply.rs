//! Applying one partition's records to DynamoDB, in offset order: decoding, validating
//! against the directory, inserting sends in batches, edits and deletes under the log's
//! authority, and dead-lettering what can never be applied.

use std::collections::HashMap;

use aws_lambda_events::kafka::KafkaRecord;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::json;
use shared::domain::{
    refusal, Change, GroupId, Message, MessageId, MessageText, RecordCoordinates, User, UserId,
};
use shared::events::{ChatEvent, IncomingEvent};
use shared::guard::require_member;
use shared::push::Frame;
use shared::store::{DeleteOutcome, EditOutcome, MessageEdit, Store, StoreError, StoredMessage};

use crate::{ProcessError, Processor, Report};

impl Processor {
    pub(crate) async fn apply_partition(
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
        if let Err(refused) = require_member(user, group_id) {
            return Ok(Err(refused.to_string()));
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
