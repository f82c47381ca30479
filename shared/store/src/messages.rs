//! Messages: inserts that never overwrite, pages of a group's history, edits ordered by their
//! log position, deletes as tombstones.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use crate::item::{get_id, message_to_item, n, s, stored_message_from_item, Item};
use crate::{classify, DynamoStore, MESSAGE_ID_INDEX};
use aws_sdk_dynamodb::types::Select;
use chat_core::domain::{GroupId, Message, MessageId, UserId};
use chat_core::store::{
    Cursor, DeleteOutcome, EditOutcome, MessageEdit, MessageReader, MessageWriter, Page,
    PageRequest, StoreError, StoredMessage, MAX_DELETED_PER_PAGE, MAX_PAGE_SIZE, MAX_UNREAD,
};

/// Most messages an unread count reads, whatever their authors: the work stays bounded when
/// the reader's own messages are many of the newest.
const UNREAD_SCAN_BUDGET: i32 = 4 * MAX_UNREAD as i32;

/// Most queries one history page makes (the budget of [`MAX_DELETED_PER_PAGE`] usually ends it
/// sooner; this bounds a page of large messages, where 1 MB per query ends each early).
const HISTORY_QUERIES: usize = 4;
/// How many items a history query after the first asks for: past deletions, in wide steps.
const DELETED_STEP: usize = 100;

impl DynamoStore {
    /// Puts `message` unless its id exists: `None` when it was new, else what is stored (live,
    /// or the tombstone of a deletion, which a replayed send must never bring back).
    pub(super) async fn put_new(
        &self,
        message: &Message,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.messages)
            .set_item(Some(message_to_item(message)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", "message_id")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(c) => match c.item {
                        Some(old) => Ok(Some(stored_message_from_item(&old)?)),
                        None => Err(StoreError::Corrupt(
                            "a refused insert returned no item".into(),
                        )),
                    },
                    other => Err(StoreError::Corrupt(other.to_string())),
                }
            }
            Err(e) => Err(classify("PutItem", e)),
        }
    }
}

#[async_trait]
impl MessageReader for DynamoStore {
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

    async fn get_message_in(
        &self,
        group: GroupId,
        id: MessageId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.messages)
            .key("group_id", n(group))
            .key("message_id", n(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item().map(stored_message_from_item).transpose()
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
        // One more than asked tells whether more lie beyond. Tombstones are filtered after
        // DynamoDB's Limit, so read on until enough live messages, the end, or the budget of
        // items (then the page ends early and says where to resume). Reads after the first
        // take a wider step, so a run of deletions costs few queries.
        let budget = limit + 1 + MAX_DELETED_PER_PAGE;
        let mut messages = Vec::with_capacity(limit + 1);
        let (mut examined, mut resume) = (0usize, None);
        let mut start: Option<Item> = None;
        for query in 0..HISTORY_QUERIES {
            let want = limit + 1 - messages.len();
            let step = if query == 0 {
                want
            } else {
                want.max(DELETED_STEP)
            };
            let out = request
                .clone()
                .limit(step.min(budget - examined) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            examined += out.scanned_count().max(1) as usize;
            for item in out.items() {
                match stored_message_from_item(item)? {
                    StoredMessage::Live(m) => messages.push(m),
                    StoredMessage::Deleted { .. } => {}
                }
            }
            let Some(key) = out.last_evaluated_key().filter(|key| !key.is_empty()) else {
                break;
            };
            if messages.len() > limit {
                break;
            }
            if examined >= budget || query + 1 == HISTORY_QUERIES {
                resume = Some(get_id(key, "message_id")?);
                break;
            }
            start = Some(key.clone());
        }
        let more = messages.len() > limit || resume.is_some();
        messages.truncate(limit);
        if !forward {
            messages.reverse();
        }
        Ok(Page {
            messages,
            more,
            resume,
        })
    }

    async fn unread_count(
        &self,
        group: GroupId,
        reader: UserId,
        after: u64,
    ) -> Result<u32, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.tables.messages)
            .key_condition_expression("#g = :g AND #id > :after")
            .filter_expression("#d = :false AND #u <> :me")
            .expression_attribute_names("#g", "group_id")
            .expression_attribute_names("#id", "message_id")
            .expression_attribute_names("#d", "deleted")
            .expression_attribute_names("#u", "user_id")
            .expression_attribute_values(":g", n(group))
            .expression_attribute_values(":after", n(after))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":me", n(reader))
            .select(Select::Count);
        let (mut counted, mut scanned) = (0u32, 0i32);
        let mut start: Option<Item> = None;
        loop {
            let out = request
                .clone()
                .limit(UNREAD_SCAN_BUDGET - scanned)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            counted += out.count().max(0) as u32;
            scanned += out.scanned_count().max(1);
            match out.last_evaluated_key() {
                Some(key)
                    if !key.is_empty() && counted < MAX_UNREAD && scanned < UNREAD_SCAN_BUDGET =>
                {
                    start = Some(key.clone())
                }
                _ => return Ok(counted.min(MAX_UNREAD)),
            }
        }
    }
}

#[async_trait]
impl MessageWriter for DynamoStore {
    async fn insert_message(&self, message: &Message) -> Result<bool, StoreError> {
        Ok(self.put_new(message).await?.is_none())
    }

    /// Conditional puts, in parallel or in transactions (see `inserts.rs`): two runs of one
    /// batch (a retry while the first still writes) cannot overwrite each other's newer state,
    /// unlike a read then a batch write.
    async fn insert_messages(
        &self,
        messages: &[Message],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        // A transaction takes an item once, and parallel puts of one id would race: a repeat
        // of an id earlier in this call is the message that first one stored.
        let mut first_of: Vec<usize> = Vec::with_capacity(messages.len());
        let mut unique: Vec<Message> = Vec::new();
        for m in messages {
            match unique.iter().position(|u| u.id == m.id) {
                Some(at) => first_of.push(at),
                None => {
                    first_of.push(unique.len());
                    unique.push(m.clone());
                }
            }
        }
        let stored = self.insert_new(&unique).await?;
        let mut seen = vec![false; unique.len()];
        Ok(first_of
            .iter()
            .map(|&at| {
                let repeat = std::mem::replace(&mut seen[at], true);
                match (&stored[at], repeat) {
                    (Some(existing), _) => Some(existing.clone()),
                    (None, true) => Some(StoredMessage::Live(unique[at].clone())),
                    (None, false) => None,
                }
            })
            .collect())
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
