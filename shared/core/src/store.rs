//! Persistence of users, groups, messages, send claims and WebSocket connections, as ports:
//! one small trait per capability, reads apart from writes, so that a function is given only
//! what it may do (a history reader holds no [`MessageWriter`]: it cannot call one). The
//! DynamoDB store (`chat-store`) implements them all, the test kit's `MemoryStore` too, and one
//! contract suite holds both to the same behaviour.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    AllGroupsSocket, Connection, Group, GroupId, Member, Message, MessageId, MessageText, Role,
    SocketSlot, User, UserId,
};
use crate::error::{ChatError, Service};

/// Most messages one history page may hold.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Most deleted messages one history page reads past: a page over a long run of deletions
/// ends early, with [`Page::resume`] saying where the next one starts, so no request reads a
/// group's whole history whatever was deleted.
pub const MAX_DELETED_PER_PAGE: usize = 200;
/// Unread counts stop here: a bounded read whatever a group holds (a client shows "999+").
pub const MAX_UNREAD: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Timed out, unreachable, throttled: the caller may retry.
    #[error("DynamoDB did not answer {op}: {cause}")]
    Unavailable { op: &'static str, cause: String },
    /// Refused for a reason a retry will not fix (missing table, bad request).
    #[error("DynamoDB {op} failed: {cause}")]
    Failed { op: &'static str, cause: String },
    /// An item that our own code could not have written.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable { .. } => ChatError::Unavailable {
                service: Service::DynamoDb,
                cause: e.to_string(),
            },
            other => ChatError::Internal(other.to_string()),
        }
    }
}

/// A message as stored: deleted messages stay as tombstones so that a replayed send can never
/// bring them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredMessage {
    Live(Message),
    Deleted {
        id: MessageId,
        group_id: GroupId,
        user_id: UserId,
    },
}

impl StoredMessage {
    pub fn id(&self) -> MessageId {
        match self {
            StoredMessage::Live(m) => m.id,
            StoredMessage::Deleted { id, .. } => *id,
        }
    }

    pub fn group_id(&self) -> GroupId {
        match self {
            StoredMessage::Live(m) => m.group_id,
            StoredMessage::Deleted { group_id, .. } => *group_id,
        }
    }
}

/// Which slice of a group's history to read. Every page is returned oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The newest messages.
    Latest,
    /// The newest messages older than this id.
    Before(MessageId),
    /// The oldest messages newer than this id.
    After(MessageId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1 to [`MAX_PAGE_SIZE`]; larger values are clamped.
    pub limit: u32,
    pub cursor: Cursor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// Whether more messages lie beyond this page in the direction of the cursor (older for
    /// `Latest`/`Before`, newer for `After`).
    pub more: bool,
    /// Set when the page ended early, having read past [`MAX_DELETED_PER_PAGE`] deleted
    /// messages: the id (deleted) the next page continues from, exclusive, in the cursor's
    /// direction. `None` when the next page continues from the last message given.
    pub resume: Option<MessageId>,
}

/// An edit to apply. `version` orders edits of one message (the edit record's position in the
/// log): an edit applies only over an older one, so a replay can never revert a later edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEdit {
    pub group_id: GroupId,
    pub message_id: MessageId,
    pub new_text: MessageText,
    pub edited_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOutcome {
    /// The edit is stored; the message as it now reads.
    Applied(Message),
    /// This edit, or a later one, was applied before: nothing changed.
    AlreadyApplied,
    /// The message is deleted; edits no longer apply.
    Deleted,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    AlreadyDeleted,
    NotFound,
}

/// Identifies one logical send: the sender and the idempotency key the client chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SendKey {
    pub user_id: UserId,
    pub client_message_id: String,
}

impl SendKey {
    pub fn as_string(&self) -> String {
        format!("{}:{}", self.user_id, self.client_message_id)
    }
}

/// What claiming a [`SendKey`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendClaim {
    /// Nobody sent this yet (or an earlier claim's lease ran out): the caller sends it.
    Claimed,
    /// Already sent: reply with this message.
    Done {
        group_id: GroupId,
        message_id: MessageId,
    },
    /// Another request is sending it right now.
    InProgress,
    /// The key was used for a different message.
    Conflict,
}

/// What recording the message of a send found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedSend {
    /// The send is this message now.
    Recorded,
    /// The send already is a message: this one if the ids agree, else the record at hand is a
    /// duplicate of the send.
    Already {
        group_id: GroupId,
        message_id: MessageId,
    },
}

/// Users and groups, read: who may post where.
#[async_trait]
pub trait Directory: Send + Sync {
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// Every user, ordered by id.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    async fn get_group(&self, id: GroupId) -> Result<Option<Group>, StoreError>;
    /// Every group, ordered by id (set-up and administration).
    async fn list_groups(&self) -> Result<Vec<Group>, StoreError>;
    /// The user's membership of the group, read consistently; `None` when the user is not a
    /// member (never was, or was removed).
    async fn membership(&self, group: GroupId, user: UserId) -> Result<Option<Member>, StoreError>;
    /// The group's members, by user id.
    async fn members_of(&self, group: GroupId) -> Result<Vec<Member>, StoreError>;
    /// The user's memberships, by group id (through the user index: a change shows within a
    /// second or so).
    async fn groups_of(&self, user: UserId) -> Result<Vec<Member>, StoreError>;
}

/// Users and groups, written: set-up and administration only.
#[async_trait]
pub trait DirectoryWriter: Send + Sync {
    async fn put_user(&self, user: &User) -> Result<(), StoreError>;
    async fn put_group(&self, group: &Group) -> Result<(), StoreError>;
    /// Records the membership unless one (or its removal) is recorded already: set-up's seed,
    /// which must not undo a member's leaving when it runs again.
    async fn seed_member(&self, member: &Member) -> Result<(), StoreError>;
}

/// Creating groups (`POST /groups`): the group and its owner's membership, at once.
#[async_trait]
pub trait GroupCreator: Send + Sync {
    /// Creates the group with `owner` as its owner unless the id is taken; whether it did.
    async fn create_group(&self, group: &Group, owner: UserId) -> Result<bool, StoreError>;
}

/// Accounts of the identity provider (a Cognito user's `sub`, or a local one) and the chat
/// users they are: sign-up without an administrator.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// The chat user of `account`, if it signed up.
    async fn account_user(&self, account: &str) -> Result<Option<UserId>, StoreError>;
    /// Makes `account` the chat user `user`, with `first_group` its own group (the user its
    /// owner), all at once; unless the account signed up before, when nothing changes and its
    /// user is returned. `None` when `user`'s or `first_group`'s id is taken (draw another).
    async fn sign_up(
        &self,
        account: &str,
        user: &User,
        first_group: &Group,
    ) -> Result<Option<UserId>, StoreError>;
}

/// Memberships and read marks, written: only the stream processor, applying the log.
#[async_trait]
pub trait MembershipWriter: Send + Sync {
    /// Gives `user` `role` in `group` (`None`: removes the user), as the log's record at
    /// `version` says, unless a change recorded later in the log was applied already; whether
    /// it changed anything. A replay therefore never undoes a later change, and a read mark
    /// survives a role change.
    async fn apply_membership(
        &self,
        group: GroupId,
        user: UserId,
        role: Option<Role>,
        version: u64,
    ) -> Result<bool, StoreError>;
    /// Moves a member's read mark forward to `message_id`; whether it moved (never back, and
    /// not for a non-member).
    async fn mark_read(
        &self,
        group: GroupId,
        user: UserId,
        message_id: MessageId,
    ) -> Result<bool, StoreError>;
}

/// Messages, read: history and the checks of an edit or delete.
#[async_trait]
pub trait MessageReader: Send + Sync {
    /// Finds a message by id alone, through the id index.
    async fn get_message(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError>;
    /// Finds a message of `group` by its key (no index, strongly consistent): `None` also when
    /// `id` is another group's. The fast way whenever the group is known.
    async fn get_message_in(
        &self,
        group: GroupId,
        id: MessageId,
    ) -> Result<Option<StoredMessage>, StoreError>;
    /// A page of a group's history without deleted messages.
    async fn list_messages(&self, group: GroupId, page: PageRequest) -> Result<Page, StoreError>;
    /// How many live messages of `group` newer than `after` were sent by others than
    /// `reader`, counted up to [`MAX_UNREAD`].
    async fn unread_count(
        &self,
        group: GroupId,
        reader: UserId,
        after: u64,
    ) -> Result<u32, StoreError>;
}

/// Messages, written: only the stream processor writes them.
#[async_trait]
pub trait MessageWriter: Send + Sync {
    /// Stores a new message unless a message (or tombstone) with its id exists.
    /// Returns whether it was stored.
    async fn insert_message(&self, message: &Message) -> Result<bool, StoreError>;
    /// Stores many new messages in batches, skipping any whose id exists (as message or
    /// tombstone). Returns, for each message in order, `None` if it was stored now, else what
    /// was there. Safe only with a single writer per group (the stream processor), since the
    /// check and the write are separate requests.
    async fn insert_messages(
        &self,
        messages: &[Message],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError>;
    async fn edit_message(&self, edit: &MessageEdit) -> Result<EditOutcome, StoreError>;
    /// Turns the message into a tombstone (its text is dropped).
    async fn delete_message(
        &self,
        group: GroupId,
        id: MessageId,
        deleted_at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError>;
}

/// Claims of `client_message_id`s, so that a retried send makes one message (send-message's
/// side).
#[async_trait]
pub trait SendClaims: Send + Sync {
    /// Claims a send for the caller unless it was sent already or another claim younger than
    /// `lease` is pending; `fingerprint` identifies the send's content, and a claim of the
    /// same key with another fingerprint is a [`SendClaim::Conflict`]. Claims are kept a day.
    async fn claim_send(
        &self,
        key: &SendKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<SendClaim, StoreError>;
    /// Records the message a claimed send produced, unless the send already is another one
    /// (which the caller then answers with): the same rule as [`AppliedSends`].
    async fn complete_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<AppliedSend, StoreError>;
    /// Gives a claim up after a failed send, so that a retry need not wait for the lease.
    async fn release_send(&self, key: &SendKey) -> Result<(), StoreError>;
}

/// The stream processor's side of send claims.
#[async_trait]
pub trait AppliedSends: Send + Sync {
    /// Records the message it applies for a send, unless the send already is another message
    /// (the record at hand is then a duplicate, not stored).
    async fn record_applied_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<AppliedSend, StoreError>;
}

/// WebSocket connections, read: the group each listens to.
#[async_trait]
pub trait ConnectionReader: Send + Sync {
    /// A socket opened on one group; `None` for an unknown socket or an all-groups one.
    async fn get_connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError>;
    /// Whether a socket of either kind is stored under `connection_id` (strongly consistent).
    async fn socket_exists(&self, connection_id: &str) -> Result<bool, StoreError>;
    /// The socket's subscription to `group`, whichever kind of socket it is.
    async fn subscription(
        &self,
        connection_id: &str,
        group: GroupId,
    ) -> Result<Option<Connection>, StoreError>;
    /// The group's subscriptions, through the group index, expired ones included (their items
    /// outlive them until TTL deletion, days later on AWS): the stream processor closes those.
    async fn group_subscriptions(&self, group: GroupId) -> Result<Vec<Connection>, StoreError>;
    /// The group's unexpired subscriptions.
    async fn connections_for_group(&self, group: GroupId) -> Result<Vec<Connection>, StoreError> {
        let now = Utc::now();
        let mut all = self.group_subscriptions(group).await?;
        all.retain(|c| c.is_live(now));
        Ok(all)
    }
}

/// WebSocket connections, written.
#[async_trait]
pub trait ConnectionWriter: Send + Sync {
    /// Stores a socket opened on one group.
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Stores a socket that follows all its user's groups, subscribed to `groups`.
    async fn put_all_groups_socket(
        &self,
        socket: &AllGroupsSocket,
        groups: &[GroupId],
    ) -> Result<(), StoreError>;
    /// Subscribes each all-groups socket of `user` to `group`, which they joined; the
    /// subscriptions added. Doing it again changes nothing.
    async fn follow_group(
        &self,
        user: UserId,
        group: GroupId,
    ) -> Result<Vec<Connection>, StoreError>;
    /// Forgets one subscription of an all-groups socket (its user left the group); the socket
    /// and its other groups stay.
    async fn delete_subscription(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Forgets a socket with all its subscriptions (and uncounts it from its user's sockets
    /// on each group); the subscriptions it had.
    async fn delete_connection(&self, connection_id: &str) -> Result<Vec<Connection>, StoreError>;
    /// Counts `socket` among `user`'s sockets on `group` in one atomic, strongly consistent
    /// update, and returns them all, oldest first, this one included and none older than a
    /// socket's lifetime (those are uncounted): of parallel connects, each sees every socket
    /// counted before its own. Forgetting a socket or a subscription uncounts it.
    async fn count_socket(
        &self,
        user: UserId,
        group: GroupId,
        socket: &SocketSlot,
    ) -> Result<Vec<SocketSlot>, StoreError>;
}

/// The per-user rate limits' buckets (`crate::limits`), kept where every instance of every
/// function sees them.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one action from the bucket `key` if `limit` allows it now; whether it did.
    async fn take(
        &self,
        key: &str,
        limit: crate::limits::Limit,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Takes `wanted` actions at once if the bucket holds them, else one if it holds one; how
    /// many it took (0 when none).
    async fn take_up_to(
        &self,
        key: &str,
        limit: crate::limits::Limit,
        now_ms: i64,
        wanted: u32,
    ) -> Result<u32, StoreError> {
        let _ = wanted;
        Ok(u32::from(self.take(key, limit, now_ms).await?))
    }
}

#[async_trait]
impl<L: RateLimiter + ?Sized> RateLimiter for crate::limits::RefusalMemory<L> {
    async fn take(
        &self,
        key: &str,
        limit: crate::limits::Limit,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if self.still_refused(key, now_ms) {
            return Ok(false);
        }
        if self.spend_leased(key, now_ms) {
            return Ok(true);
        }
        let wanted = self.lease_size(key, limit, now_ms);
        let taken = self
            .limiter()
            .take_up_to(key, limit, now_ms, wanted)
            .await?;
        if taken == 0 {
            self.remember(key, limit, now_ms);
            return Ok(false);
        }
        self.lease(key, taken, now_ms);
        Ok(true)
    }
}

/// Every capability at once: for set-up, administration and tests, never a function.
pub trait Store:
    Directory
    + DirectoryWriter
    + GroupCreator
    + MembershipWriter
    + Accounts
    + MessageReader
    + MessageWriter
    + SendClaims
    + AppliedSends
    + ConnectionReader
    + ConnectionWriter
    + RateLimiter
{
}

impl<T> Store for T where
    T: Directory
        + DirectoryWriter
        + GroupCreator
        + MembershipWriter
        + Accounts
        + MessageReader
        + MessageWriter
        + SendClaims
        + AppliedSends
        + ConnectionReader
        + ConnectionWriter
        + RateLimiter
{
}
