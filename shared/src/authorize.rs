//! The check behind edit and delete: the message exists and is live, the user exists, is its
//! author, and has the flag for the change.

use crate::domain::{refusal, Change, Message, MessageId, UserId};
use crate::error::ChatError;
use crate::store::{Store, StoredMessage};

/// The live message `user_id` may make `change` to, or why not.
pub async fn authorize_change(
    store: &dyn Store,
    message_id: MessageId,
    user_id: UserId,
    change: Change,
) -> Result<Message, ChatError> {
    let user = store
        .get_user(user_id)
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("user {user_id} does not exist")))?;
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
