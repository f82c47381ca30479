//! Claims of `client_message_id`s: a conditional put claims a send, a lease lets a stalled
//! claim be taken over, and the claim then records the message it produced.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};

use super::item::{get_id, get_n, n, s, Item};
use super::{classify, DynamoStore};
use crate::domain::{GroupId, MessageId};
use crate::store::{SendClaim, SendClaims, SendKey, StoreError};

#[async_trait]
impl SendClaims for DynamoStore {
    async fn claim_send(
        &self,
        key: &SendKey,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<SendClaim, StoreError> {
        let now_ms = now.timestamp_millis();
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("send_key", s(key.as_string()))
            .item("claimed_at", n(now_ms))
            .item(
                "expires_at",
                n((now + chrono::Duration::days(1)).timestamp()),
            )
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

    async fn complete_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.tables.idempotency)
            .key("send_key", s(key.as_string()))
            .update_expression("SET group_id = :g, message_id = :m")
            .expression_attribute_values(":g", n(group_id))
            .expression_attribute_values(":m", n(message_id))
            .send()
            .await
            .map_err(|e| classify("UpdateItem", e))?;
        Ok(())
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
}
