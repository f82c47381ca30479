//! Our types as DynamoDB items and back. A malformed item is a [`StoreError::Corrupt`], never
//! a panic.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use chat_core::domain::{
    AllGroupsSocket, Connection, GroupId, Message, MessageId, MessageText, User, UserId,
};
use chat_core::store::{StoreError, StoredMessage};

pub(super) type Item = HashMap<String, AttributeValue>;

/// The `kind` of a directory item.
pub(super) const USER: &str = "user";
pub(super) const GROUP: &str = "group";

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn corrupt(name: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute `{name}` {what}"))
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(corrupt(name, "is not a string")),
        None => Err(corrupt(name, "is missing")),
    }
}

pub(super) fn get_n<T: FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(name, "is out of range")),
        Some(_) => Err(corrupt(name, "is not a number")),
        None => Err(corrupt(name, "is missing")),
    }
}

pub(super) fn get_id<T: TryFrom<i128>>(item: &Item, name: &str) -> Result<T, StoreError> {
    T::try_from(get_n::<i128>(item, name)?).map_err(|_| corrupt(name, "is not a valid id"))
}

pub(super) fn get_bool(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        Some(AttributeValue::Bool(v)) => Ok(*v),
        Some(_) => Err(corrupt(name, "is not a boolean")),
        None => Err(corrupt(name, "is missing")),
    }
}

pub(super) fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(get_s(item, name)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt(name, "is not an RFC 3339 time"))
}

pub(super) fn user_to_item(user: &User) -> Item {
    HashMap::from([
        ("kind".to_owned(), s(USER)),
        ("id".to_owned(), n(user.user_id)),
        ("name".to_owned(), s(&user.name)),
        ("group_id".to_owned(), n(user.group_id)),
        ("can_edit".to_owned(), AttributeValue::Bool(user.can_edit)),
        (
            "can_delete".to_owned(),
            AttributeValue::Bool(user.can_delete),
        ),
    ])
}

pub(super) fn user_from_item(item: &Item) -> Result<User, StoreError> {
    Ok(User {
        user_id: get_id(item, "id")?,
        name: get_s(item, "name")?.to_owned(),
        group_id: get_id(item, "group_id")?,
        can_edit: get_bool(item, "can_edit")?,
        can_delete: get_bool(item, "can_delete")?,
    })
}

pub(super) fn message_to_item(m: &Message) -> Item {
    let mut item = HashMap::from([
        ("group_id".to_owned(), n(m.group_id)),
        ("message_id".to_owned(), n(m.id)),
        ("user_id".to_owned(), n(m.user_id)),
        ("name".to_owned(), s(&m.name)),
        ("message".to_owned(), s(m.message.as_str())),
        ("can_edit".to_owned(), AttributeValue::Bool(m.can_edit)),
        ("can_delete".to_owned(), AttributeValue::Bool(m.can_delete)),
        ("created_at".to_owned(), s(m.created_at.to_rfc3339())),
        ("deleted".to_owned(), AttributeValue::Bool(false)),
    ]);
    if let Some(edited_at) = m.edited_at {
        item.insert("edited_at".to_owned(), s(edited_at.to_rfc3339()));
    }
    item
}

pub(super) fn stored_message_from_item(item: &Item) -> Result<StoredMessage, StoreError> {
    let id: MessageId = get_id(item, "message_id")?;
    let group_id: GroupId = get_id(item, "group_id")?;
    let user_id: UserId = get_id(item, "user_id")?;
    if get_bool(item, "deleted")? {
        return Ok(StoredMessage::Deleted {
            id,
            group_id,
            user_id,
        });
    }
    let text = MessageText::new(get_s(item, "message")?)
        .map_err(|e| StoreError::Corrupt(format!("message {id}: {e}")))?;
    Ok(StoredMessage::Live(Message {
        id,
        user_id,
        name: get_s(item, "name")?.to_owned(),
        group_id,
        message: text,
        can_edit: get_bool(item, "can_edit")?,
        can_delete: get_bool(item, "can_delete")?,
        created_at: get_time(item, "created_at")?,
        edited_at: item
            .contains_key("edited_at")
            .then(|| get_time(item, "edited_at"))
            .transpose()?,
    }))
}

/// A subscription's item: a socket opened on one group is keyed by its connection id; an
/// all-groups socket's subscription by `{connection id}#{group}`, with the socket's id in
/// `socket`, beside the socket's own item (keyed by its id, with no group).
pub(super) fn connection_to_item(connection: &Connection) -> Item {
    let mut item = Item::new();
    let key = if connection.all_groups {
        item.insert("socket".into(), s(&connection.connection_id));
        subscription_key(&connection.connection_id, connection.group_id)
    } else {
        connection.connection_id.clone()
    };
    item.insert("connection_id".into(), s(key));
    item.insert("group_id".into(), n(connection.group_id));
    if let Some(user_id) = connection.user_id {
        item.insert("user_id".into(), n(user_id));
    }
    item.insert(
        "connected_at".into(),
        s(connection.connected_at.to_rfc3339()),
    );
    item.insert("expires_at".into(), n(connection.expires_at.timestamp()));
    item
}

pub(super) fn subscription_key(socket: &str, group: GroupId) -> String {
    format!("{socket}#{group}")
}

/// The item of an all-groups socket itself: its user, no group (so no group index entry).
pub(super) fn all_groups_socket_to_item(socket: &AllGroupsSocket) -> Item {
    let mut item = Item::new();
    item.insert("connection_id".into(), s(&socket.connection_id));
    item.insert("all_groups".into(), AttributeValue::Bool(true));
    item.insert("user_id".into(), n(socket.user_id));
    item.insert("connected_at".into(), s(socket.connected_at.to_rfc3339()));
    item.insert("expires_at".into(), n(socket.expires_at.timestamp()));
    item
}

pub(super) fn is_all_groups_socket(item: &Item) -> bool {
    matches!(item.get("all_groups"), Some(AttributeValue::Bool(true)))
}

pub(super) fn all_groups_socket_from_item(item: &Item) -> Result<AllGroupsSocket, StoreError> {
    let expires_at: i64 = get_n(item, "expires_at")?;
    Ok(AllGroupsSocket {
        connection_id: get_s(item, "connection_id")?.to_owned(),
        user_id: get_id(item, "user_id")?,
        connected_at: get_time(item, "connected_at")?,
        expires_at: DateTime::from_timestamp(expires_at, 0)
            .ok_or_else(|| corrupt("expires_at", "is out of range"))?,
    })
}

pub(super) fn connection_from_item(item: &Item) -> Result<Connection, StoreError> {
    let expires_at: i64 = get_n(item, "expires_at")?;
    let socket = item
        .contains_key("socket")
        .then(|| get_s(item, "socket"))
        .transpose()?;
    Ok(Connection {
        connection_id: match socket {
            Some(socket) => socket.to_owned(),
            None => get_s(item, "connection_id")?.to_owned(),
        },
        group_id: get_id(item, "group_id")?,
        all_groups: socket.is_some(),
        user_id: item
            .contains_key("user_id")
            .then(|| get_id(item, "user_id"))
            .transpose()?,
        connected_at: get_time(item, "connected_at")?,
        expires_at: DateTime::from_timestamp(expires_at, 0)
            .ok_or_else(|| corrupt("expires_at", "is out of range"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::compat::seed_users;

    #[test]
    fn users_round_trip_through_items() {
        for user in seed_users() {
            assert_eq!(user_from_item(&user_to_item(&user)), Ok(user));
        }
    }

    #[test]
    fn a_malformed_item_is_reported_not_panicked_on() {
        let mut item = user_to_item(&seed_users()[0]);
        item.insert("id".into(), n(0));
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
        item.insert("id".into(), s("1"));
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
        item.remove("id");
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
    }
}
