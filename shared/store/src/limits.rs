//! The per-user rate limits' buckets: one item per bucket, its GCRA arrival time in `tat`
//! (epoch milliseconds), expiring once the bucket would be full again. A take is one
//! conditional write, two when the bucket is in use: "idle, start afresh", else "in use, one
//! more if there is room". Either condition failing means no room: the request is refused
//! without a read. A take may ask for several actions at once (a lease, see
//! `chat_core::limits::RefusalMemory`): all of them, else one.
//!
//! A refused conditional write is billed like one that passed. So each take reads back the
//! arrival time it wrote, and the process remembers it: while a bucket it wrote is still in
//! use (its arrival time ahead of now, and arrival times only grow), the "idle" write would
//! be refused, and the take starts with "in use".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;

use crate::item::{n as n_of, s};
use crate::{classify, DynamoStore};
use chat_core::limits::Limit;
use chat_core::store::{RateLimiter, StoreError};

fn condition_failed(e: &SdkError<UpdateItemError>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception())
}

/// The last arrival time this process wrote to each bucket.
#[derive(Debug, Clone, Default)]
pub struct KnownArrivals(Arc<Mutex<HashMap<String, i64>>>);

/// Buckets remembered before those no longer in use are dropped.
const KNOWN_ARRIVALS: usize = 10_000;

impl KnownArrivals {
    /// Whether `key`'s bucket is surely in use at `now_ms`.
    fn in_use(&self, key: &str, now_ms: i64) -> bool {
        let known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        known.get(key).is_some_and(|tat| *tat > now_ms)
    }

    fn wrote(&self, key: &str, tat: Option<i64>, now_ms: i64) {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= KNOWN_ARRIVALS {
            known.retain(|_, tat| *tat > now_ms);
        }
        if let Some(tat) = tat {
            known.insert(key.to_owned(), tat);
        }
    }
}

/// A bucket's item is gone once the bucket is full again (its arrival time passed: a missing
/// bucket is a full one), so an idle user's bucket costs nothing.
fn expires(tat: i64) -> i64 {
    tat / 1000 + 1
}

impl DynamoStore {
    /// "Idle, start afresh": `n` actions (`1 <= n <= burst`) from a full bucket.
    async fn take_idle(
        &self,
        key: &str,
        limit: Limit,
        now_ms: i64,
        n: u32,
    ) -> Result<bool, StoreError> {
        let fresh = now_ms.saturating_add(limit.interval_ms().saturating_mul(i64::from(n)));
        self.take_if(
            key,
            now_ms,
            "SET tat = :fresh, expires_at = :expires",
            "attribute_not_exists(tat) OR tat <= :now",
            [
                (":fresh", fresh),
                (":expires", expires(fresh)),
                (":now", now_ms),
            ],
        )
        .await
    }

    /// "In use, `n` more if there is room for them".
    async fn take_in_use(
        &self,
        key: &str,
        limit: Limit,
        now_ms: i64,
        n: u32,
    ) -> Result<bool, StoreError> {
        let interval = limit.interval_ms();
        let taken = interval.saturating_mul(i64::from(n));
        // Room for `n` more: the arrival time may be this far ahead of now at most.
        let latest = now_ms
            .saturating_add(limit.tolerance_ms())
            .saturating_sub(interval.saturating_mul(i64::from(n.saturating_sub(1))));
        self.take_if(
            key,
            now_ms,
            "SET tat = tat + :taken, expires_at = :expires",
            "tat <= :latest",
            // At most the actions taken past the latest arrival time that may pass.
            [
                (":taken", taken),
                (":expires", expires(latest.saturating_add(taken))),
                (":latest", latest),
            ],
        )
        .await
    }

    /// One conditional update of the bucket `key`: whether its condition held. The arrival
    /// time it wrote is remembered.
    async fn take_if(
        &self,
        key: &str,
        now_ms: i64,
        update: &str,
        condition: &str,
        values: [(&str, i64); 3],
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.limits)
            .key("limit_key", s(key))
            .update_expression(update)
            .condition_expression(condition)
            .return_values(ReturnValue::UpdatedNew);
        for (name, value) in values {
            request = request.expression_attribute_values(name, n_of(value));
        }
        match request.send().await {
            Ok(output) => {
                let tat = output
                    .attributes()
                    .and_then(|a| a.get("tat"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok());
                self.arrivals.wrote(key, tat, now_ms);
                Ok(true)
            }
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }
}

#[async_trait]
impl RateLimiter for DynamoStore {
    async fn take(&self, key: &str, limit: Limit, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self.take_up_to(key, limit, now_ms, 1).await? == 1)
    }

    /// One write, two when the bucket is in use, three when it has room for fewer than
    /// `wanted` (then one is taken if there is room for one).
    async fn take_up_to(
        &self,
        key: &str,
        limit: Limit,
        now_ms: i64,
        wanted: u32,
    ) -> Result<u32, StoreError> {
        let wanted = wanted.clamp(1, limit.burst.max(1));
        // A bucket this process knows in use would refuse "idle" (and bill for it).
        let surely_in_use = self.arrivals.in_use(key, now_ms);
        if (!surely_in_use && self.take_idle(key, limit, now_ms, wanted).await?)
            || self.take_in_use(key, limit, now_ms, wanted).await?
        {
            return Ok(wanted);
        }
        if wanted > 1 && self.take_in_use(key, limit, now_ms, 1).await? {
            return Ok(1);
        }
        Ok(0)
    }
}
