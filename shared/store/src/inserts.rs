//! Inserting a batch of new messages, each only if its id is new, so that two runs of one
//! batch (a retry while the first still writes) cannot overwrite each other's newer state (a
//! tombstone, an edit): a put whose id exists is refused with what is stored
//! (`ReturnValuesOnConditionCheckFailure`).
//!
//! A few messages (the usual batch while people chat) go as parallel conditional PutItems:
//! the lowest latency (one message ~5 ms against ~12 ms in a transaction). More (a burst, a
//! catch-up) go as TransactWriteItems of up to 100 conditional puts: one request instead of a
//! hundred, which is what DynamoDB Local's CPU, shared with everything else on a laptop,
//! needs (100 messages: 64-133 ms against 186-232 ms as parallel puts). A put whose id exists
//! cancels its transaction; the reasons name which ones, with what is stored, and the
//! transaction is sent again without them. Messages need no atomicity with each other: the
//! transaction is only a way to send many conditional puts at once.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::item::{message_to_item, stored_message_from_item};
use crate::{classify, DynamoStore};
use chat_core::domain::Message;
use chat_core::store::{StoreError, StoredMessage};

/// Batches of up to this many messages go as parallel puts, larger ones as transactions.
pub const PARALLEL_PUTS_UP_TO: usize = 8;
/// DynamoDB's limit of actions in one transaction.
const TRANSACTION_ITEMS: usize = 100;

impl DynamoStore {
    /// For each of `messages` (ids distinct): `None` if it was inserted, else what is stored.
    pub(super) async fn insert_new(
        &self,
        messages: &[Message],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        if messages.len() <= PARALLEL_PUTS_UP_TO {
            // Owned items: borrowed ones trip the compiler's higher-ranked check on the handler.
            return stream::iter(messages.to_vec())
                .map(|message| async move { self.put_new(&message).await })
                .buffered(PARALLEL_PUTS_UP_TO)
                .try_collect()
                .await;
        }
        let mut outcomes: Vec<Option<StoredMessage>> = vec![None; messages.len()];
        let chunks: Vec<Vec<usize>> = (0..messages.len())
            .collect::<Vec<_>>()
            .chunks(TRANSACTION_ITEMS)
            .map(<[usize]>::to_vec)
            .collect();
        for mut pending in chunks {
            // Each round either commits, or drops at least one put whose id exists.
            while !pending.is_empty() {
                match self.transact(messages, &pending).await? {
                    None => break,
                    Some(existing) => {
                        for (index, stored) in existing {
                            outcomes[index] = Some(stored);
                            pending.retain(|i| *i != index);
                        }
                    }
                }
            }
        }
        Ok(outcomes)
    }

    /// One transaction of the puts of `pending`: `None` when it committed, else the messages
    /// that exist (by index), which cancelled it.
    async fn transact(
        &self,
        messages: &[Message],
        pending: &[usize],
    ) -> Result<Option<Vec<(usize, StoredMessage)>>, StoreError> {
        let fail = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Failed {
            op: "TransactWriteItems",
            cause: e.to_string(),
        };
        let mut items = Vec::with_capacity(pending.len());
        for &i in pending {
            let put = Put::builder()
                .table_name(&self.tables.messages)
                .set_item(Some(message_to_item(&messages[i])))
                .condition_expression("attribute_not_exists(#id)")
                .expression_attribute_names("#id", "message_id")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(fail)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(None),
            Err(e) => e,
        };
        let reasons = match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                c.cancellation_reasons().to_vec()
            }
            _ => return Err(classify("TransactWriteItems", error)),
        };
        let mut existing = Vec::new();
        for (&i, reason) in pending.iter().zip(&reasons) {
            match reason.code() {
                Some("ConditionalCheckFailed") => match reason.item() {
                    Some(old) => existing.push((i, stored_message_from_item(old)?)),
                    None => {
                        return Err(StoreError::Corrupt(
                            "a refused insert returned no item".into(),
                        ))
                    }
                },
                None | Some("None") => {}
                // A conflicting write in flight, throttling: retry later.
                Some(other) => {
                    return Err(StoreError::Unavailable {
                        op: "TransactWriteItems",
                        cause: format!("cancelled: {other}"),
                    })
                }
            }
        }
        if existing.is_empty() {
            return Err(StoreError::Unavailable {
                op: "TransactWriteItems",
                cause: format!("cancelled without a reason: {reasons:?}"),
            });
        }
        Ok(Some(existing))
    }
}
