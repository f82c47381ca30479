//! The send idempotency protocol: a send that carries a `client_message_id` is published at most
//! once per (user, key), however often it is retried and whatever requests race it.
//!
//! 1. Claim the key (a conditional write, with a fingerprint of the message: the same key with
//!    another message is refused, 422). The claimant publishes, then records the message on the
//!    claim. A publish that Kafka refused releases the claim, so that a retry can go at once; one
//!    whose outcome is unknown (a timeout: the record may be in the log) keeps it.
//! 2. A request that finds the key done answers with the recorded message. The stream
//!    processor records the message of every send it applies too, first come first served, and
//!    skips a second record of one send (a publish repeated after an unknown outcome): retrying
//!    until a 2xx makes one message, and the id of the reply is the one stored.
//! 3. A request that finds a claim in progress looks again every [`POLL_INTERVAL`], for at most
//!    the Kafka timeout plus [`WAIT_MARGIN`], then gives up with a 503.
//! 4. A claim whose holder vanished mid-publish is taken over once its [`lease`] has run out.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::domain::{GroupId, MessageId};
use crate::error::{ChatError, Service};
use crate::publish::PublishError;
use crate::store::{AppliedSend, SendClaim, SendClaims, SendKey};

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
/// `fingerprint` identifies what is sent (the same key with another message is a 422).
pub async fn send_once<S, F, Fut>(
    store: &S,
    key: &SendKey,
    fingerprint: &str,
    kafka_timeout: Duration,
    publish: F,
) -> Result<(GroupId, MessageId), ChatError>
where
    S: SendClaims + ?Sized,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(GroupId, MessageId), PublishError>>,
{
    let lease = chrono::Duration::from_std(lease(kafka_timeout))
        .map_err(|e| ChatError::Internal(format!("claim lease out of range: {e}")))?;
    let give_up_at = Instant::now() + kafka_timeout + WAIT_MARGIN;
    let mut publish = Some(publish);
    loop {
        match store
            .claim_send(key, fingerprint, Utc::now(), lease)
            .await?
        {
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
                    // Refused: not in the log; a retry may publish at once.
                    Err(e @ PublishError::Rejected(_)) => {
                        if let Err(release) = store.release_send(key).await {
                            tracing::warn!(error = %release, "could not release a send claim");
                        }
                        return Err(e.into());
                    }
                    // Unknown: the record may be in the log; the claim stays until its lease
                    // runs out or the stream processor records the message.
                    Err(e @ PublishError::Unavailable(_)) => return Err(e.into()),
                };
                return match store.complete_send(key, group_id, message_id).await? {
                    AppliedSend::Recorded => Ok((group_id, message_id)),
                    // An earlier record of this send reached the store first: that is the
                    // message, this record will be skipped.
                    AppliedSend::Already {
                        group_id,
                        message_id,
                    } => Ok((group_id, message_id)),
                };
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
            SendClaim::Conflict => {
                return Err(ChatError::Unprocessable(format!(
                    "client_message_id {:?} was already used for another message",
                    key.client_message_id
                )))
            }
        }
    }
}
