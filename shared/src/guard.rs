//! The checks several handlers share: a user or group that must exist, a user who must belong
//! to a group, and who may change a message.

use crate::domain::{refusal, Change, Group, GroupId, Message, MessageId, User, UserId};
use crate::error::ChatError;
use crate::store::{Directory, Messages, StoredMessage};

/// The user, or 404.
pub async fn existing_user<S: Directory + ?Sized>(
    store: &S,
    user_id: UserId,
) -> Result<User, ChatError> {
    store
        .get_user(user_id)
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("user {user_id} does not exist")))
}

/// The group, or 404.
pub async fn existing_group<S: Directory + ?Sized>(
    store: &S,
    group_id: GroupId,
) -> Result<Group, ChatError> {
    store
        .get_group(group_id)
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("group {group_id} does not exist")))
}

/// Nothing, or 403 when `user` does not belong to `group`.
pub fn require_member(user: &User, group: GroupId) -> Result<(), ChatError> {
    if user.belongs_to(group) {
        Ok(())
    } else {
        Err(ChatError::Forbidden(format!(
            "user {} is not a member of group {group}",
            user.user_id
        )))
    }
}

/// The live message `user_id` may make `change` to, or why not: the user exists, the message
/// exists and is live, the user is its author and has the flag for the change.
pub async fn authorize_change<S: Directory + Messages + ?Sized>(
    store: &S,
    message_id: MessageId,
    user_id: UserId,
    change: Change,
) -> Result<Message, ChatError> {
    let user = existing_user(store, user_id).await?;
    let message = match store.get_message(message_id).await? {
        Some(StoredMessage::Live(message)) => message,
        Some(StoredMessage::Deleted { .. }) => {
            return Err(ChatError::NotFound(format!(
                "message {message_id} was deleted"
            )))
        }
        None => {
            return Err(ChatError::NotFound(format!(
                "message {message_id} does not exist"
            )))
        }
    };
    match refusal(&user, message.user_id, message_id, change) {
        Some(reason) => Err(ChatError::Forbidden(reason)),
        None => Ok(message),
    }
}
