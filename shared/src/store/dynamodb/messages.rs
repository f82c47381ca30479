//! Messages: inserts that never overwrite, pages of a group's history, edits ordered by their
//! log position, deletes as tombstones.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use chrono::{DateTime, Utc};

use super::item::{get_n, message_to_item, n, s, stored_message_from_item, Item};
use super::{backoff, classify, DynamoStore, MESSAGE_ID_INDEX};
use crate::domain::{GroupId, Message, MessageId};
use crate::store::{
    Cursor, DeleteOutcome, EditOutcome, MessageEdit, Messages, Page, PageRequest, StoreError,
    StoredMessage, MAX_PAGE_SIZE,
};

impl DynamoStore {
    /// One BatchWriteItem of up to 25 puts, resending what DynamoDB leaves unprocessed.
    async fn write_batch(&self, writes: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut request = Some(HashMap::from([(self.tables.messages.clone(), writes)]));
        let mut attempt = 0;
        while let Some(items) = request.take().filter(|r| !r.is_empty()) {
            let out = self
                .client
                .batch_write_item()
                .set_request_items(Some(items))
                .send()
                .await
                .map_err(|e| classify("BatchWriteItem", e))?;
            request = out.unprocessed_items().cloned();
            attempt += 1;
            let more = request.as_ref().is_some_and(|r| !r.is_empty());
            backoff("BatchWriteItem", attempt, more).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Messages for DynamoStore {
    async fn insert_message(&self, message: &Message) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.messages)
            .set_item(Some(message_to_item(message)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", "message_id")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(classify("PutItem", e)),
        }
    }

    async fn insert_messages(
        &self,
        messages: &[Message],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        let table = &self.tables.messages;
        let key_of = |group: u64, id: u64| (group, id);
        // Which ids exist already: BatchGetItem, 100 keys a request.
        let mut existing: HashMap<(u64, u64), StoredMessage> = HashMap::new();
        let mut unique: Vec<&Message> = Vec::with_capacity(messages.len());
        for m in messages {
            if !unique.iter().any(|u| u.id == m.id) {
                unique.push(m);
            }
        }
        for chunk in unique.chunks(100) {
            let mut keys = KeysAndAttributes::builder();
            for m in chunk {
                keys = keys.keys(HashMap::from([
                    ("group_id".to_owned(), n(m.group_id)),
                    ("message_id".to_owned(), n(m.id)),
                ]));
            }
            let mut request = Some(HashMap::from([(
                table.clone(),
                keys.consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Failed {
                        op: "BatchGetItem",
                        cause: e.to_string(),
                    })?,
            )]));
            let mut attempt = 0;
            while let Some(items) = request.take().filter(|r| !r.is_empty()) {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| classify("BatchGetItem", e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(table))
                    .into_iter()
                    .flatten()
                {
                    let stored = stored_message_from_item(item)?;
                    let group = get_n::<u64>(item, "group_id")?;
                    existing.insert(key_of(group, stored.id().get()), stored);
                }
                request = out.unprocessed_keys().cloned();
                attempt += 1;
                backoff(
                    "BatchGetItem",
                    attempt,
                    request.as_ref().is_some_and(|r| !r.is_empty()),
                )
                .await?;
            }
        }
        // Write the new ones: BatchWriteItem, 25 items a request.
        let fresh: Vec<&Message> = unique
            .iter()
            .copied()
            .filter(|m| !existing.contains_key(&key_of(m.group_id.get(), m.id.get())))
            .collect();
        // Chunks go out together: DynamoDB takes them in parallel.
        let writes = fresh
            .chunks(25)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|m| {
                        let put = PutRequest::builder()
                            .set_item(Some(message_to_item(m)))
                            .build()
                            .map_err(|e| StoreError::Failed {
                                op: "BatchWriteItem",
                                cause: e.to_string(),
                            })?;
                        Ok(WriteRequest::builder().put_request(put).build())
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        futures_util::future::try_join_all(writes.into_iter().map(|w| self.write_batch(w))).await?;
        Ok(messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let repeat = messages.iter().position(|other| other.id == m.id) != Some(i);
                match existing.get(&key_of(m.group_id.get(), m.id.get())) {
                    Some(stored) => Some(stored.clone()),
                    // A repeat of an id earlier in this call: the first one stored it.
                    None if repeat => Some(StoredMessage::Live(m.clone())),
                    None => None,
                }
            })
            .collect())
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.messages)
            .index_name(MESSAGE_ID_INDEX)
            .key_condition_expression("#id = :id")
            .expression_attribute_names("#id", "message_id")
            .expression_attribute_values(":id", n(id))
            .limit(1)
            .send()
            .await
            .map_err(|e| classify("Query", e))?;
        out.items()
            .first()
            .map(stored_message_from_item)
            .transpose()
    }

    async fn list_messages(&self, group: GroupId, page: PageRequest) -> Result<Page, StoreError> {
        let limit = page.limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let (condition, forward, bound) = match page.cursor {
            Cursor::Latest => ("#g = :g", false, None),
            Cursor::Before(id) => ("#g = :g AND #id < :bound", false, Some(id)),
            Cursor::After(id) => ("#g = :g AND #id > :bound", true, Some(id)),
        };
        let mut request = self
            .client
            .query()
            .table_name(&self.tables.messages)
            .key_condition_expression(condition)
            .filter_expression("#d = :false")
            .expression_attribute_names("#g", "group_id")
            .expression_attribute_names("#d", "deleted")
            .expression_attribute_values(":g", n(group))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .scan_index_forward(forward);
        if let Some(bound) = bound {
            request = request
                .expression_attribute_names("#id", "message_id")
                .expression_attribute_values(":bound", n(bound));
        }
        // One more than asked tells whether more lie beyond; tombstones are filtered after
        // DynamoDB's Limit, so keep reading until enough live messages or the end.
        let mut messages = Vec::with_capacity(limit + 1);
        let mut start: Option<Item> = None;
        loop {
            let want = (limit + 1 - messages.len()) as i32;
            let out = request
                .clone()
                .limit(want)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for item in out.items() {
                match stored_message_from_item(item)? {
                    StoredMessage::Live(m) => messages.push(m),
                    StoredMessage::Deleted { .. } => {}
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() && messages.len() <= limit => {
                    start = Some(key.clone())
                }
                _ => break,
            }
        }
        let more = messages.len() > limit;
        messages.truncate(limit);
        if !forward {
            messages.reverse();
        }
        Ok(Page { messages, more })
    }

    async fn edit_message(&self, edit: &MessageEdit) -> Result<EditOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.messages)
            .key("group_id", n(edit.group_id))
            .key("message_id", n(edit.message_id))
            .update_expression("SET #m = :text, #at = :at, #v = :v")
            .condition_expression(
                "attribute_exists(#id) AND #d = :false AND (attribute_not_exists(#v) OR #v < :v)",
            )
            .expression_attribute_names("#m", "message")
            .expression_attribute_names("#at", "edited_at")
            .expression_attribute_names("#v", "edit_version")
            .expression_attribute_names("#id", "message_id")
            .expression_attribute_names("#d", "deleted")
            .expression_attribute_values(":text", s(edit.new_text.as_str()))
            .expression_attribute_values(":at", s(edit.edited_at.to_rfc3339()))
            .expression_attribute_values(":v", n(edit.version))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes().map(stored_message_from_item).transpose()? {
                Some(StoredMessage::Live(message)) => Ok(EditOutcome::Applied(message)),
                _ => Err(StoreError::Corrupt("edit returned no live message".into())),
            },
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let old = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                Ok(
                    match old.as_ref().map(stored_message_from_item).transpose()? {
                        None => EditOutcome::NotFound,
                        Some(StoredMessage::Deleted { .. }) => EditOutcome::Deleted,
                        Some(StoredMessage::Live(_)) => EditOutcome::AlreadyApplied,
                    },
                )
            }
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }

    async fn delete_message(
        &self,
        group: GroupId,
        id: MessageId,
        deleted_at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.messages)
            .key("group_id", n(group))
            .key("message_id", n(id))
            .update_expression("SET #d = :true, #at = :at REMOVE #m")
            .condition_expression("attribute_exists(#id) AND #d = :false")
            .expression_attribute_names("#d", "deleted")
            .expression_attribute_names("#at", "deleted_at")
            .expression_attribute_names("#m", "message")
            .expression_attribute_names("#id", "message_id")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":at", s(deleted_at.to_rfc3339()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let existed = matches!(
                    e.into_service_error(),
                    UpdateItemError::ConditionalCheckFailedException(c) if c.item.is_some()
                );
                Ok(if existed {
                    DeleteOutcome::AlreadyDeleted
                } else {
                    DeleteOutcome::NotFound
                })
            }
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }
}
