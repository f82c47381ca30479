//! Domain types of the chat and their validation. Everything a client or a Kafka record hands
//! us passes through a constructor here before it is used, so an invalid id or text never
//! reaches the store or the log.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The token claim that names our user: a Cognito custom attribute, which the user pool lets
/// administrators set and users not change (see the template's app client).
pub const USER_ID_CLAIM: &str = "custom:user_id";

/// Largest id we hand out: ids are JSON numbers and must stay exact in JavaScript.
pub const MAX_ID: u64 = (1 << 53) - 1;
/// Longest message, in characters (Unicode scalar values).
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Message ids reserve this many partition slots: `id = offset * PARTITION_SLOTS + partition + 1`.
pub const PARTITION_SLOTS: u64 = 1024;

/// Why a value from outside was refused. The text is written for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A ", $what, ": a whole number from 1 to 2^53 - 1.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(into = "u64")]
        pub struct $name(u64);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(IdVisitor($what))
                    .and_then(|v| Self::new(v).map_err(serde::de::Error::custom))
            }
        }

        impl $name {
            pub fn new(value: i128) -> Result<Self, ValidationError> {
                if (1..=i128::from(MAX_ID)).contains(&value) {
                    Ok(Self(value as u64))
                } else {
                    Err(ValidationError(format!(
                        concat!($what, " must be a whole number from 1 to {}, got {}"),
                        MAX_ID, value
                    )))
                }
            }

            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl TryFrom<i128> for $name {
            type Error = ValidationError;
            fn try_from(value: i128) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            /// Parses a decimal id as it appears in a path or query string.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let digits = s.strip_prefix('+').unwrap_or(s);
                let negative = digits.starts_with('-');
                let body = digits.strip_prefix('-').unwrap_or(digits);
                if body.is_empty() || body.len() > 30 || !body.bytes().all(|b| b.is_ascii_digit()) {
                    let shown: String = s.chars().take(40).collect();
                    return Err(ValidationError(format!(
                        concat!($what, " must be a whole number, got `{}`"),
                        shown
                    )));
                }
                let magnitude: i128 = body.parse().map_err(|_| {
                    ValidationError(format!(concat!($what, " is out of range: {}"), s))
                })?;
                Self::new(if negative { -magnitude } else { magnitude })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

/// Accepts JSON integers of any sign and size (range is checked by the id's constructor) and
/// refuses everything else, naming the field.
struct IdVisitor(&'static str);

impl serde::de::Visitor<'_> for IdVisitor {
    type Value = i128;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} as a whole number from 1 to {MAX_ID}", self.0)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i128, E> {
        Ok(i128::from(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i128, E> {
        Ok(i128::from(v))
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<i128, E> {
        Ok(i128::try_from(v).unwrap_or(i128::MAX))
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<i128, E> {
        Ok(v)
    }
}

id_type!(UserId, "user_id");
id_type!(GroupId, "group_id");
id_type!(MessageId, "message_id");

impl UserId {
    /// For constants of our own, known to be in range.
    pub(crate) const fn from_trusted(value: u64) -> Self {
        Self(value)
    }
}

impl GroupId {
    /// For constants of our own, known to be in range.
    pub(crate) const fn from_trusted(value: u64) -> Self {
        Self(value)
    }
}

/// Where a record sits in Kafka. The pair is unique for a topic and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordCoordinates {
    pub partition: i32,
    pub offset: i64,
}

impl MessageId {
    /// The id of the message carried by the record at `coordinates`. Unique across the topic,
    /// increasing with the offset within a partition (so within a group, whose records share
    /// a partition), and the same on every redelivery of the record.
    pub fn from_coordinates(c: RecordCoordinates) -> Result<Self, ValidationError> {
        if !(0..PARTITION_SLOTS as i32).contains(&c.partition) || c.offset < 0 {
            return Err(ValidationError(format!(
                "record coordinates out of range: partition {} offset {}",
                c.partition, c.offset
            )));
        }
        let id = i128::from(c.offset) * i128::from(PARTITION_SLOTS) + i128::from(c.partition) + 1;
        Self::new(id)
    }

    /// The record this id was derived from.
    pub fn coordinates(self) -> RecordCoordinates {
        let n = self.0 - 1;
        RecordCoordinates {
            partition: (n % PARTITION_SLOTS) as i32,
            offset: (n / PARTITION_SLOTS) as i64,
        }
    }
}

/// The text of a message: at least one non-blank character, at most [`MAX_MESSAGE_CHARS`]
/// characters, and no control characters other than tab, line feed and carriage return.
/// Kept exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageText(String);

impl MessageText {
    pub fn new(text: impl Into<String>) -> Result<Self, ValidationError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(ValidationError("message text must not be empty".into()));
        }
        let chars = text.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Err(ValidationError(format!(
                "message text is {chars} characters long; the limit is {MAX_MESSAGE_CHARS}"
            )));
        }
        if let Some(c) = text
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(ValidationError(format!(
                "message text contains the control character U+{:04X}; only tab, line feed and carriage return are allowed",
                c as u32
            )));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MessageText {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<MessageText> for String {
    fn from(text: MessageText) -> String {
        text.0
    }
}

/// A person, in the original app's shape. `group_id` is the user's first group: where a send
/// that names no group goes. The groups a user may post to and read are their memberships
/// ([`Member`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user_id: UserId,
    pub name: String,
    pub group_id: GroupId,
    pub can_edit: bool,
    pub can_delete: bool,
}

/// What a member may do in a group: owners and admins add and remove members and may delete
/// any message of the group (moderation); an admin may not remove an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    /// Whether the role manages the group's members and messages.
    pub fn manages(self) -> bool {
        self >= Role::Admin
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(ValidationError(format!(
                "role must be member, admin or owner, got `{}`",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// A user's membership of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub group_id: GroupId,
    pub user_id: UserId,
    pub role: Role,
    /// The newest message id the member has read; 0 when none.
    pub read_mark: u64,
}

/// Longest name of a group or a signed-up user, in characters.
pub const MAX_GROUP_NAME_CHARS: usize = 100;

/// A group's name: see [`display_name`].
pub fn group_name(name: &str) -> Result<String, ValidationError> {
    display_name("a group's name", name)
}

/// A name people see (`what` says whose, in the error): 1 to [`MAX_GROUP_NAME_CHARS`]
/// characters as sent (the API documents' `maxLength`, white space included), not blank, no
/// control characters; kept as given, without surrounding white space.
pub fn display_name(what: &str, name: &str) -> Result<String, ValidationError> {
    let sent = name.chars().count();
    let name = name.trim();
    if name.is_empty() {
        return Err(ValidationError(format!("{what} must not be empty")));
    }
    if sent > MAX_GROUP_NAME_CHARS {
        return Err(ValidationError(format!(
            "{what} may be {MAX_GROUP_NAME_CHARS} characters long at most"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError(format!(
            "{what} must not hold control characters"
        )));
    }
    Ok(name.to_owned())
}

/// A change to an existing message, which only its author may make, and only with the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Edit,
    Delete,
}

/// Why `user`, whose role in the message's group is `role`, may not make `change` to a
/// message by `author`; `None` when allowed. A user's own messages follow the user's flags; an
/// owner or admin of the group may delete any of its messages (moderation). The log is the
/// authority, so the stream processor asks this again when it applies the change.
pub fn refusal(
    user: &User,
    role: Option<Role>,
    author: UserId,
    message: MessageId,
    change: Change,
) -> Option<String> {
    let (verb, allowed) = match change {
        Change::Edit => ("edit", user.can_edit),
        Change::Delete => ("delete", user.can_delete),
    };
    if change == Change::Delete && role.is_some_and(Role::manages) {
        return None;
    }
    if user.user_id != author {
        Some(format!(
            "only the author of message {message} may {verb} it; user {} is not",
            user.user_id
        ))
    } else if !allowed {
        Some(format!("user {} may not {verb} messages", user.user_id))
    } else {
        None
    }
}

/// A chat group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub group_id: GroupId,
    pub name: String,
}

/// A message as clients see it: the original app's object plus timestamps. `can_edit` and
/// `can_delete` are the author's flags when the message was sent, as the original had them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub user_id: UserId,
    pub name: String,
    pub group_id: GroupId,
    pub message: MessageText,
    pub can_edit: bool,
    pub can_delete: bool,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
}

/// A WebSocket connection's subscription to one group, until it closes or expires. A socket
/// opened on one group has one; a socket that follows every group of its user has one per group
/// (`all_groups`), added and dropped as the user joins and leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: String,
    pub group_id: GroupId,
    /// The verified user who opened it; `None` for the original app's anonymous subscriptions
    /// (`trust-client` mode only).
    pub user_id: Option<UserId>,
    /// Whether the socket follows all its user's groups: leaving this group then ends the
    /// subscription, not the socket.
    pub all_groups: bool,
    pub connected_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// How long a socket may live: API Gateway closes it after two hours.
pub const MAX_SOCKET_SECONDS: i64 = 2 * 60 * 60;

/// One of a user's sockets on a group, as the per-user socket cap counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSlot {
    pub connection_id: String,
    /// To the millisecond.
    pub connected_at: DateTime<Utc>,
}

impl Connection {
    /// The socket as its user's sockets on its group count it.
    pub fn slot(&self) -> SocketSlot {
        SocketSlot {
            connection_id: self.connection_id.clone(),
            connected_at: self.connected_at,
        }
    }

    /// Whether its holder may still have it: before its token's expiry and API Gateway's two
    /// hours, whichever came first.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// A WebSocket connection that follows every group of its user, including those joined later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllGroupsSocket {
    pub connection_id: String,
    pub user_id: UserId,
    pub connected_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl AllGroupsSocket {
    /// Its subscription to `group`.
    pub fn subscription(&self, group_id: GroupId) -> Connection {
        Connection {
            connection_id: self.connection_id.clone(),
            group_id,
            user_id: Some(self.user_id),
            all_groups: true,
            connected_at: self.connected_at,
            expires_at: self.expires_at,
        }
    }
}

#[cfg(test)]
mod tests;
