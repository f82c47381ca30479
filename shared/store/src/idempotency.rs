//! Claims of `client_message_id`s: a conditional put claims a send (with a fingerprint of its
//! body, so that a key reused for another message is refused), a lease lets a stalled claim be
//! taken over, and the claim then records the message of the send, set once: by the function
//! that published it, or by the stream processor that applied it, whichever comes first.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};

use crate::item::{get_id, get_n, get_s, n, s, Item};
use crate::{classify, DynamoStore};
use chat_core::domain::{GroupId, MessageId};
use chat_core::store::{AppliedSend, AppliedSends, SendClaim, SendClaims, SendKey, StoreError};

#[async_trait]
impl SendClaims for DynamoStore {
    async fn claim_send(
        &self,
        key: &SendKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<SendClaim, StoreError> {
        let now_ms = now.timestamp_millis();
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("send_key", s(key.as_string()))
            .item("fingerprint", s(fingerprint))
            .item("claimed_at", n(now_ms))
            .item("expires_at", n(expiry(now)))
            .condition_expression("attribute_not_exists(send_key)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(SendClaim::Claimed),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item.unwrap_or_default(),
                    _ => Item::new(),
                }
            }
            Err(e) => return Err(classify("PutItem", e)),
        };
        // A send the stream processor recorded first (it records what it applies) has no
        // fingerprint.
        if old.contains_key("fingerprint") && get_s(&old, "fingerprint")? != fingerprint {
            return Ok(SendClaim::Conflict);
        }
        if old.contains_key("message_id") {
            return Ok(SendClaim::Done {
                group_id: get_id(&old, "group_id")?,
                message_id: get_id(&old, "message_id")?,
            });
        }
        let claimed_at: i64 = get_n(&old, "claimed_at")?;
        if claimed_at > now_ms - lease.num_milliseconds() {
            return Ok(SendClaim::InProgress);
        }
        // The earlier claim's holder is gone (its lease ran out): take the claim over, unless
        // somebody else just did.
        let takeover = self
            .client
            .update_item()
            .table_name(&self.tables.idempotency)
            .key("send_key", s(key.as_string()))
            .update_expression("SET claimed_at = :now")
            .condition_expression("claimed_at = :old AND attribute_not_exists(message_id)")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":old", n(claimed_at))
            .send()
            .await;
        match takeover {
            Ok(_) => Ok(SendClaim::Claimed),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Ok(SendClaim::InProgress)
            }
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }

    async fn release_send(&self, key: &SendKey) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.idempotency)
            .key("send_key", s(key.as_string()))
            .condition_expression("attribute_not_exists(message_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(classify("DeleteItem", e)),
        }
    }

    async fn complete_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<AppliedSend, StoreError> {
        self.record_applied_send(key, group_id, message_id).await
    }
}

#[async_trait]
impl AppliedSends for DynamoStore {
    async fn record_applied_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<AppliedSend, StoreError> {
        self.record_send(key, group_id, message_id).await
    }
}

impl DynamoStore {
    /// Sets the message of a send unless it is another one already: the first record of a
    /// send to be acknowledged, or to reach the store, wins.
    async fn record_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<AppliedSend, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.idempotency)
            .key("send_key", s(key.as_string()))
            .update_expression(
                "SET group_id = :g, message_id = :m, expires_at = if_not_exists(expires_at, :e)",
            )
            .condition_expression("attribute_not_exists(message_id) OR message_id = :m")
            .expression_attribute_values(":g", n(group_id))
            .expression_attribute_values(":m", n(message_id))
            .expression_attribute_values(":e", n(expiry(Utc::now())))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AppliedSend::Recorded),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let old = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => {
                        c.item.unwrap_or_default()
                    }
                    _ => Item::new(),
                };
                Ok(AppliedSend::Already {
                    group_id: get_id(&old, "group_id")?,
                    message_id: get_id(&old, "message_id")?,
                })
            }
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }
}

/// Claims are kept for a day (DynamoDB's TTL removes them then).
fn expiry(now: DateTime<Utc>) -> i64 {
    (now + chrono::Duration::days(1)).timestamp()
}
