//! Messages to store in tests of the store, and reading them back.

use chat_core::domain::{GroupId, Message, MessageId, MessageText, UserId};
use chat_core::store::{MessageEdit, MessageWriter};
use chrono::{DateTime, Utc};

/// A group id.
pub fn group(id: i128) -> GroupId {
    GroupId::new(id).expect("group id")
}

/// A message by Alice in `group_id`.
pub fn message(group_id: i128, id: i128, text: &str) -> Message {
    Message {
        id: MessageId::new(id).expect("message id"),
        user_id: UserId::new(1).expect("user id"),
        name: "Alice".into(),
        group_id: group(group_id),
        message: MessageText::new(text).expect("text"),
        can_edit: true,
        can_delete: false,
        created_at: at(0),
        edited_at: None,
    }
}

/// A fixed time, `seconds` after 2026-01-01.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + seconds, 0).expect("time")
}

/// An edit of `m` to `text` at log position `version`.
pub fn edit(m: &Message, text: &str, version: u64) -> MessageEdit {
    MessageEdit {
        group_id: m.group_id,
        message_id: m.id,
        new_text: MessageText::new(text).expect("text"),
        edited_at: at(version as i64),
        version,
    }
}

/// The ids of `messages`, in order.
pub fn ids(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.id.get()).collect()
}

/// Stores messages `ids` (by Alice, texts `message {id}`) in `group_id`.
pub async fn fill(store: &impl MessageWriter, group_id: i128, ids: impl IntoIterator<Item = i128>) {
    for id in ids {
        assert!(store
            .insert_message(&message(group_id, id, &format!("message {id}")))
            .await
            .expect("insert"));
    }
}
