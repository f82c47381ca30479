//! The checks several handlers share: a user or group that must exist, a user who must belong
//! to a group, and who may change a message.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{AuthConfig, Config};
use crate::domain::{refusal, Change, Group, GroupId, Member, Message, MessageId, User, UserId};
use crate::error::ChatError;
use crate::known_users::KnownUsers;
use crate::publish::{PublishError, Publisher};
use crate::store::{Directory, MessageReader, StoreError, StoredMessage};

/// The user, or 404.
pub async fn existing_user<S: Directory + ?Sized>(
    store: &S,
    user_id: UserId,
) -> Result<User, ChatError> {
    store
        .get_user(user_id)
        .await?
        .ok_or_else(|| no_such_user(user_id))
}

/// The user, or 404, believed for a short while once read (see [`KnownUsers`]): for hot paths
/// whose decision is checked again downstream.
pub async fn recent_user<S: Directory + ?Sized>(
    known: &KnownUsers,
    store: &S,
    user_id: UserId,
) -> Result<User, ChatError> {
    known
        .user(store, user_id)
        .await?
        .ok_or_else(|| no_such_user(user_id))
}

fn no_such_user(user_id: UserId) -> ChatError {
    ChatError::NotFound(format!("user {user_id} does not exist"))
}

/// The group, or 404.
pub async fn existing_group<S: Directory + ?Sized>(
    store: &S,
    group_id: GroupId,
) -> Result<Group, ChatError> {
    store
        .get_group(group_id)
        .await?
        .ok_or_else(|| group_not_found(group_id))
}

/// What a caller is told of a group they cannot see, whether it exists or not: a stranger
/// learns nothing of which groups there are.
pub fn group_not_found(group: GroupId) -> ChatError {
    ChatError::NotFound(format!("group {group} not found"))
}

/// The membership, or 404 when `user_id` is not a member of `group` (or is no user at all: a
/// verified token may name a user the directory does not have), as for a group that does not
/// exist: the answer tells a stranger nothing.
pub async fn require_membership<S: Directory + ?Sized>(
    store: &S,
    user_id: UserId,
    group: GroupId,
) -> Result<Member, ChatError> {
    store
        .membership(group, user_id)
        .await?
        .ok_or_else(|| group_not_found(group))
}

/// Why the stream processor refuses a record of a non-member (for the dead-letter topic).
pub fn not_a_member(user_id: UserId, group: GroupId) -> ChatError {
    ChatError::Forbidden(format!("user {user_id} is not a member of group {group}"))
}

/// What a function that changes messages (edit, delete) holds for its life: the directory and
/// the messages, read only, and the log it publishes the change to (where a message's id also
/// says it was written).
#[derive(Clone)]
pub struct ChangeContext {
    pub auth: AuthConfig,
    /// The chat topic.
    pub chat_topic: String,
    pub directory: Arc<dyn Directory>,
    pub messages: Arc<dyn MessageReader>,
    pub publisher: Arc<dyn Publisher>,
    /// When a message the log holds but the store does not is looked for again
    /// ([`STORE_RECHECKS`]).
    pub store_rechecks: &'static [Duration],
    /// Whether `user_id` and `new_text` may come as query parameters (`query-parameters`).
    pub query_parameters: bool,
    /// The per-user buckets, and how full they may be.
    pub limiter: Arc<dyn crate::store::RateLimiter>,
    pub limits: crate::limits::RateLimits,
}

impl ChangeContext {
    pub fn new<S: Directory + MessageReader + crate::store::RateLimiter + 'static>(
        config: &Config,
        store: Arc<S>,
        publisher: Arc<dyn Publisher>,
    ) -> Self {
        Self {
            auth: config.auth.clone(),
            chat_topic: config.kafka.chat_topic.clone(),
            directory: store.clone(),
            messages: store.clone(),
            publisher,
            store_rechecks: &STORE_RECHECKS,
            query_parameters: config.compat.query_parameters,
            limiter: Arc::new(crate::limits::RefusalMemory::new(store)),
            limits: config.limits,
        }
    }
}

/// How long after the first look an edit or delete looks again for a message the log holds but
/// the store does not (the stream processor stores a send tens of ms after its id is returned,
/// and clients of the original app edit right after sending), before answering 409 with
/// `Retry-After`. Fixed, so a request costs at most 1 + 2 x (1 + len) store calls and one
/// Kafka offsets lookup whatever id it names: asking is never cheaper than answering.
pub const STORE_RECHECKS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(250)];

/// The live message `user_id` may make `change` to, or why not: the user exists, the message
/// exists and is live, the user is a member of its group and either its author with the flag
/// for the change, or an owner or admin of the group deleting it. An id the API just returned
/// is never a 404: a message that is in the log but not stored yet is looked for again at
/// [`STORE_RECHECKS`], then a 409 to retry. A message of a group the user is not in is a 404,
/// as if it did not exist: ids of other groups' messages tell a caller nothing.
pub async fn authorize_change(
    ctx: &ChangeContext,
    message_id: MessageId,
    user_id: UserId,
    change: Change,
) -> Result<Message, ChatError> {
    let user = existing_user(ctx.directory.as_ref(), user_id).await?;
    let message = stored_message(
        ctx.messages.as_ref(),
        ctx.publisher.as_ref(),
        &ctx.chat_topic,
        ctx.store_rechecks,
        user.group_id,
        message_id,
    )
    .await?;
    let Some(member) = ctx.directory.membership(message.group_id, user_id).await? else {
        return Err(ChatError::NotFound(format!(
            "message {message_id} does not exist"
        )));
    };
    match refusal(
        &user,
        Some(member.role),
        message.user_id,
        message_id,
        change,
    ) {
        Some(reason) => Err(ChatError::Forbidden(reason)),
        None => Ok(message),
    }
}

/// The message `id`, looked for first in `likely_group` by key (the common case, no index),
/// then through the id index (another group's message).
async fn find_message<S: MessageReader + ?Sized>(
    store: &S,
    likely_group: GroupId,
    id: MessageId,
) -> Result<Option<StoredMessage>, StoreError> {
    match store.get_message_in(likely_group, id).await? {
        Some(found) => Ok(Some(found)),
        None => store.get_message(id).await,
    }
}

/// The live message `id`, or 404 (deleted, or past the end of the log: never sent), or, for
/// one the log holds that is still not stored after the rechecks, 409.
async fn stored_message<S: MessageReader + ?Sized>(
    store: &S,
    log: &dyn Publisher,
    topic: &str,
    rechecks: &[Duration],
    likely_group: GroupId,
    id: MessageId,
) -> Result<Message, ChatError> {
    let mut pauses = rechecks.iter();
    let mut in_the_log = false;
    loop {
        match find_message(store, likely_group, id).await? {
            Some(StoredMessage::Live(message)) => return Ok(message),
            Some(StoredMessage::Deleted { .. }) => {
                return Err(ChatError::NotFound(format!("message {id} was deleted")))
            }
            None => {}
        }
        if !in_the_log {
            // An id is its record's place in the log: past the end, it was never sent.
            let at = id.coordinates();
            let end = match log.partition_end(topic, at.partition).await {
                Ok(end) => end,
                // No such partition: nothing was ever sent there.
                Err(PublishError::Rejected(_)) => Some(0),
                Err(e) => return Err(e.into()),
            };
            if end.is_none_or(|end| at.offset >= end) {
                return Err(ChatError::NotFound(format!("message {id} does not exist")));
            }
            in_the_log = true;
        }
        let Some(pause) = pauses.next() else {
            return Err(ChatError::Conflict(format!(
                "message {id} is not stored yet; retry shortly"
            )));
        };
        tokio::time::sleep(*pause).await;
    }
}

/// Takes one `action` of `user` from their bucket, or refuses it with `429` and when to retry.
pub async fn admit(
    limiter: &dyn crate::store::RateLimiter,
    limits: &crate::limits::RateLimits,
    user: UserId,
    action: crate::limits::Action,
) -> Result<(), ChatError> {
    let limit = limits.of(action);
    let key = format!("{}#{user}", action.name());
    let now_ms = chrono::Utc::now().timestamp_millis();
    if limiter.take(&key, limit, now_ms).await? {
        return Ok(());
    }
    tracing::info!(
        user = user.get(),
        action = action.name(),
        "over the rate limit"
    );
    Err(ChatError::TooManyRequests {
        what: format!(
            "too many {} requests: at most {} at once, then one every {} ms",
            action.name(),
            limit.burst,
            limit.interval.as_millis()
        ),
        retry_after: limit.retry_after_seconds(),
    })
}
