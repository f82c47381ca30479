//! The send idempotency protocol: a send that carries a `client_message_id` is published at most
//! once per (user, key), however often it is retried and whatever requests race it.
//!
//! 1. Claim the key (a conditional write). The claimant publishes, then records the message on
//!    the claim; a failed publish releases the claim, so that a retry can go at once.
//! 2. A request that finds the key done answers with the recorded message.
//! 3. A request that finds a claim in progress looks again every [`POLL_INTERVAL`], for at most
//!    the Kafka timeout plus [`WAIT_MARGIN`], then gives up with a 503.
//! 4. A claim whose holder vanished mid-publish is taken over once its [`lease`] has run out.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::domain::{GroupId, MessageId};
use crate::error::{ChatError, Service};
use crate::store::{SendClaim, SendClaims, SendKey};

/// Beyond its holder's longest possible publish, how long a claim is kept from takeover.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Beyond the Kafka timeout, how long a request waits for a concurrent send of its key.
pub const WAIT_MARGIN: Duration = Duration::from_secs(2);
/// How often a waiting request reads the claim again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long a claim protects a send in progress: a publish takes at most the producer's
/// delivery timeout plus the same again for the bound around it (both the Kafka timeout).
pub fn lease(kafka_timeout: Duration) -> Duration {
    kafka_timeout * 2 + LEASE_MARGIN
}

/// Runs `publish` unless a send with `key` already did, and returns the message either way.
pub async fn send_once<S, F, Fut>(
    store: &S,
    key: &SendKey,
    kafka_timeout: Duration,
    publish: F,
) -> Result<(GroupId, MessageId), ChatError>
where
    S: SendClaims + ?Sized,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(GroupId, MessageId), ChatError>>,
{
    let lease = chrono::Duration::from_std(lease(kafka_timeout))
        .map_err(|e| ChatError::Internal(format!("claim lease out of range: {e}")))?;
    let give_up_at = Instant::now() + kafka_timeout + WAIT_MARGIN;
    let mut publish = Some(publish);
    loop {
        match store.claim_send(key, Utc::now(), lease).await? {
            SendClaim::Done {
                group_id,
                message_id,
            } => return Ok((group_id, message_id)),
            SendClaim::Claimed => {
                let publish = publish
                    .take()
                    .ok_or_else(|| ChatError::Internal("a send was claimed twice".into()))?;
                let (group_id, message_id) = match publish().await {
                    Ok(sent) => sent,
                    Err(e) => {
                        if let Err(release) = store.release_send(key).await {
                            tracing::warn!(error = %release, "could not release a send claim");
                        }
                        return Err(e);
                    }
                };
                store.complete_send(key, group_id, message_id).await?;
                return Ok((group_id, message_id));
            }
            SendClaim::InProgress if Instant::now() < give_up_at => {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            SendClaim::InProgress => {
                return Err(ChatError::Unavailable {
                    service: Service::Kafka,
                    cause: format!("send {} still in progress", key.as_string()),
                })
            }
        }
    }
}
