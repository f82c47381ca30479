//! The per-user rate limits' buckets: one item per bucket, its GCRA arrival time in `tat`
//! (epoch milliseconds), expiring once the bucket would be full again. A take is one
//! conditional write, two when the bucket is in use: "idle, start afresh", else "in use, one
//! more if there is room". Either condition failing means no room: the request is refused
//! without a read.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use crate::item::{n, s};
use crate::{classify, DynamoStore};
use chat_core::limits::Limit;
use chat_core::store::{RateLimiter, StoreError};

fn condition_failed(e: &SdkError<UpdateItemError>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception())
}

#[async_trait]
impl RateLimiter for DynamoStore {
    async fn take(&self, key: &str, limit: Limit, now_ms: i64) -> Result<bool, StoreError> {
        let (interval, tolerance) = (limit.interval_ms(), limit.tolerance_ms());
        // Gone once full again (its arrival time passed: a missing bucket is a full one), so an
        // idle user's bucket costs nothing.
        let expires = |tat: i64| tat / 1000 + 1;
        let fresh = now_ms.saturating_add(interval);
        let idle = self
            .client
            .update_item()
            .table_name(&self.tables.limits)
            .key("limit_key", s(key))
            .update_expression("SET tat = :fresh, expires_at = :expires")
            .condition_expression("attribute_not_exists(tat) OR tat <= :now")
            .expression_attribute_values(":fresh", n(fresh))
            .expression_attribute_values(":expires", n(expires(fresh)))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match idle {
            Ok(_) => return Ok(true),
            Err(e) if condition_failed(&e) => {}
            Err(e) => return Err(classify("UpdateItem", e)),
        }
        let in_use = self
            .client
            .update_item()
            .table_name(&self.tables.limits)
            .key("limit_key", s(key))
            .update_expression("SET tat = tat + :interval, expires_at = :expires")
            .condition_expression("tat <= :latest")
            .expression_attribute_values(":interval", n(interval))
            // At most one interval past the latest arrival time that may pass.
            .expression_attribute_values(
                ":expires",
                n(expires(
                    now_ms.saturating_add(tolerance).saturating_add(interval),
                )),
            )
            .expression_attribute_values(":latest", n(now_ms.saturating_add(tolerance)))
            .send()
            .await;
        match in_use {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }
}
