//! An in-memory store with the same semantics as the DynamoDB one (the store contract suite
//! holds both to it), for unit tests of handler logic only. Integration and end-to-end tests
//! use DynamoDB Local.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use chat_core::domain::{
    AllGroupsSocket, Connection, Group, GroupId, Member, Message, MessageId, Role, SocketSlot,
    User, UserId, MAX_SOCKET_SECONDS,
};
use chat_core::store::{
    Accounts, AppliedSend, AppliedSends, ConnectionReader, ConnectionWriter, Cursor, DeleteOutcome,
    Directory, DirectoryWriter, EditOutcome, GroupCreator, MembershipWriter, MessageEdit,
    MessageReader, MessageWriter, Page, PageRequest, SendClaim, SendClaims, SendKey, StoreError,
    StoredMessage, MAX_DELETED_PER_PAGE, MAX_PAGE_SIZE, MAX_UNREAD,
};

use crate::{FailSwitch, Fallible};

#[derive(Default)]
struct State {
    users: BTreeMap<UserId, User>,
    groups: BTreeMap<GroupId, Group>,
    /// By id, with the version of the last applied edit.
    messages: BTreeMap<MessageId, (StoredMessage, Option<u64>)>,
    /// Subscriptions by (connection id, group).
    connections: HashMap<(String, GroupId), Connection>,
    /// The sockets that follow all their user's groups, by connection id.
    all_groups: HashMap<String, AllGroupsSocket>,
    sends: HashMap<String, SendRecord>,
    /// By (group, user): the membership (`None` once removed) and the version of its last
    /// change.
    members: BTreeMap<(GroupId, UserId), (Option<Member>, u64)>,
    accounts: HashMap<String, UserId>,
    /// The rate limits' buckets: their arrival times, in epoch milliseconds.
    buckets: HashMap<String, i64>,
    /// Each user's counted sockets per group.
    slots: HashMap<(UserId, GroupId), Vec<SocketSlot>>,
}

/// A send's claim: what it sends, when it was claimed, and its message once known.
struct SendRecord {
    fingerprint: Option<String>,
    claimed_at: DateTime<Utc>,
    message: Option<(GroupId, MessageId)>,
}

/// A store in a mutex. [`Fallible::fail_with`] makes every call fail, to test error paths.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    failure: FailSwitch<StoreError>,
    /// How many calls were made, for tests of what a request costs.
    calls: std::sync::atomic::AtomicUsize,
}

impl Fallible for MemoryStore {
    type Error = StoreError;
    fn failure(&self) -> &FailSwitch<StoreError> {
        &self.failure
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding the original app's users and groups.
    pub fn seeded() -> Self {
        let store = Self::new();
        {
            let mut state = store.lock();
            for user in chat_core::compat::seed_users() {
                state.users.insert(user.user_id, user);
            }
            for group in chat_core::compat::seed_groups() {
                state.groups.insert(group.group_id, group);
            }
            for member in chat_core::compat::seed_members() {
                state
                    .members
                    .insert((member.group_id, member.user_id), (Some(member), 0));
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many store calls have been made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn check(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.failure.check()?;
        Ok(self.lock())
    }
}

#[async_trait]
impl Directory for MemoryStore {
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.check()?.users.get(&id).cloned())
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        Ok(self.check()?.users.values().cloned().collect())
    }

    async fn get_group(&self, id: GroupId) -> Result<Option<Group>, StoreError> {
        Ok(self.check()?.groups.get(&id).cloned())
    }

    async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        Ok(self.check()?.groups.values().cloned().collect())
    }

    async fn membership(&self, group: GroupId, user: UserId) -> Result<Option<Member>, StoreError> {
        let state = self.check()?;
        Ok(state
            .members
            .get(&(group, user))
            .and_then(|(m, _)| m.clone()))
    }

    async fn members_of(&self, group: GroupId) -> Result<Vec<Member>, StoreError> {
        let state = self.check()?;
        Ok(state
            .members
            .range((group, UserId::new(1).map_err(corrupt)?)..)
            .take_while(|((g, _), _)| *g == group)
            .filter_map(|(_, (m, _))| m.clone())
            .collect())
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<Member>, StoreError> {
        let state = self.check()?;
        Ok(state
            .members
            .iter()
            .filter(|((_, u), _)| *u == user)
            .filter_map(|(_, (m, _))| m.clone())
            .collect())
    }
}

fn corrupt(e: chat_core::domain::ValidationError) -> StoreError {
    StoreError::Corrupt(e.0)
}

#[async_trait]
impl GroupCreator for MemoryStore {
    async fn create_group(&self, group: &Group, owner: UserId) -> Result<bool, StoreError> {
        let mut state = self.check()?;
        let taken = state.groups.contains_key(&group.group_id)
            || state.members.keys().any(|(g, _)| *g == group.group_id);
        if taken {
            return Ok(false);
        }
        state.groups.insert(group.group_id, group.clone());
        let member = Member {
            group_id: group.group_id,
            user_id: owner,
            role: Role::Owner,
            read_mark: 0,
        };
        state
            .members
            .insert((group.group_id, owner), (Some(member), 0));
        Ok(true)
    }
}

#[async_trait]
impl Accounts for MemoryStore {
    async fn account_user(&self, account: &str) -> Result<Option<UserId>, StoreError> {
        Ok(self.check()?.accounts.get(account).copied())
    }

    async fn sign_up(
        &self,
        account: &str,
        user: &User,
        first_group: &Group,
    ) -> Result<Option<UserId>, StoreError> {
        let mut state = self.check()?;
        if let Some(existing) = state.accounts.get(account) {
            return Ok(Some(*existing));
        }
        let group = first_group.group_id;
        let taken = state.users.contains_key(&user.user_id)
            || state.groups.contains_key(&group)
            || state.members.keys().any(|(g, _)| *g == group);
        if taken {
            return Ok(None);
        }
        state.accounts.insert(account.to_owned(), user.user_id);
        state.users.insert(user.user_id, user.clone());
        state.groups.insert(group, first_group.clone());
        let owner = Member {
            group_id: group,
            user_id: user.user_id,
            role: Role::Owner,
            read_mark: 0,
        };
        state
            .members
            .insert((group, user.user_id), (Some(owner), 0));
        Ok(Some(user.user_id))
    }
}

#[async_trait]
impl MembershipWriter for MemoryStore {
    async fn apply_membership(
        &self,
        group: GroupId,
        user: UserId,
        role: Option<Role>,
        version: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.check()?;
        let slot = state.members.entry((group, user)).or_insert((None, 0));
        // As DynamoDB's condition: only over an older change (set-up's seed is version 0).
        if slot.1 >= version {
            return Ok(false);
        }
        let read_mark = slot.0.as_ref().map_or(0, |m| m.read_mark);
        slot.0 = role.map(|role| Member {
            group_id: group,
            user_id: user,
            role,
            read_mark,
        });
        slot.1 = version;
        Ok(true)
    }

    async fn mark_read(
        &self,
        group: GroupId,
        user: UserId,
        message_id: MessageId,
    ) -> Result<bool, StoreError> {
        let mut state = self.check()?;
        match state.members.get_mut(&(group, user)) {
            Some((Some(member), _)) if member.read_mark < message_id.get() => {
                member.read_mark = message_id.get();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl DirectoryWriter for MemoryStore {
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.check()?.users.insert(user.user_id, user.clone());
        Ok(())
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        self.check()?.groups.insert(group.group_id, group.clone());
        Ok(())
    }

    async fn seed_member(&self, member: &Member) -> Result<(), StoreError> {
        self.check()?
            .members
            .entry((member.group_id, member.user_id))
            .or_insert((Some(member.clone()), 0));
        Ok(())
    }
}

#[async_trait]
impl MessageReader for MemoryStore {
    async fn get_message(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self.check()?.messages.get(&id).map(|(m, _)| m.clone()))
    }

    async fn get_message_in(
        &self,
        group: GroupId,
        id: MessageId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let found = self.get_message(id).await?;
        Ok(found.filter(|m| m.group_id() == group))
    }

    async fn list_messages(&self, group: GroupId, page: PageRequest) -> Result<Page, StoreError> {
        let state = self.check()?;
        let limit = page.limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let of_group = state
            .messages
            .iter()
            .filter(|(_, (m, _))| m.group_id() == group)
            .map(|(id, (m, _))| (*id, m));
        let in_range: Box<dyn Iterator<Item = (MessageId, &StoredMessage)>> = match page.cursor {
            Cursor::Latest => Box::new(of_group.rev()),
            Cursor::Before(bound) => Box::new(of_group.rev().filter(move |(id, _)| *id < bound)),
            Cursor::After(bound) => Box::new(of_group.filter(move |(id, _)| *id > bound)),
        };
        // As DynamoDB's store does: read at most this many items, deleted ones included.
        let budget = limit + 1 + MAX_DELETED_PER_PAGE;
        let (mut messages, mut examined, mut last) = (Vec::new(), 0, None);
        for (id, stored) in in_range {
            if messages.len() > limit || examined == budget {
                break;
            }
            examined += 1;
            last = Some(id);
            if let StoredMessage::Live(m) = stored {
                messages.push(m.clone());
            }
        }
        let resume = if messages.len() <= limit && examined == budget {
            last
        } else {
            None
        };
        let more = messages.len() > limit || resume.is_some();
        messages.truncate(limit);
        if !matches!(page.cursor, Cursor::After(_)) {
            messages.reverse();
        }
        Ok(Page {
            messages,
            more,
            resume,
        })
    }

    async fn unread_count(
        &self,
        group: GroupId,
        reader: UserId,
        after: u64,
    ) -> Result<u32, StoreError> {
        let state = self.check()?;
        let count = state
            .messages
            .values()
            .filter(|(m, _)| {
                matches!(m, StoredMessage::Live(m)
                    if m.group_id == group && m.id.get() > after && m.user_id != reader)
            })
            .take(MAX_UNREAD as usize)
            .count();
        Ok(count as u32)
    }
}

#[async_trait]
impl MessageWriter for MemoryStore {
    async fn insert_message(&self, message: &Message) -> Result<bool, StoreError> {
        let mut state = self.check()?;
        if state.messages.contains_key(&message.id) {
            return Ok(false);
        }
        state
            .messages
            .insert(message.id, (StoredMessage::Live(message.clone()), None));
        Ok(true)
    }

    async fn insert_messages(
        &self,
        messages: &[Message],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        let mut state = self.check()?;
        Ok(messages
            .iter()
            .map(|m| match state.messages.get(&m.id) {
                Some((existing, _)) => Some(existing.clone()),
                None => {
                    state
                        .messages
                        .insert(m.id, (StoredMessage::Live(m.clone()), None));
                    None
                }
            })
            .collect())
    }

    async fn edit_message(&self, edit: &MessageEdit) -> Result<EditOutcome, StoreError> {
        let mut state = self.check()?;
        match state.messages.get_mut(&edit.message_id) {
            Some((StoredMessage::Live(m), version)) if m.group_id == edit.group_id => {
                if version.is_some_and(|v| v >= edit.version) {
                    return Ok(EditOutcome::AlreadyApplied);
                }
                m.message = edit.new_text.clone();
                m.edited_at = Some(edit.edited_at);
                *version = Some(edit.version);
                Ok(EditOutcome::Applied(m.clone()))
            }
            Some((StoredMessage::Deleted { group_id, .. }, _)) if *group_id == edit.group_id => {
                Ok(EditOutcome::Deleted)
            }
            _ => Ok(EditOutcome::NotFound),
        }
    }

    async fn delete_message(
        &self,
        group: GroupId,
        id: MessageId,
        _deleted_at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        let mut state = self.check()?;
        match state.messages.get_mut(&id) {
            Some((StoredMessage::Live(m), _)) if m.group_id == group => {
                let tombstone = StoredMessage::Deleted {
                    id,
                    group_id: group,
                    user_id: m.user_id,
                };
                state.messages.insert(id, (tombstone, None));
                Ok(DeleteOutcome::Deleted)
            }
            Some((StoredMessage::Deleted { group_id, .. }, _)) if *group_id == group => {
                Ok(DeleteOutcome::AlreadyDeleted)
            }
            _ => Ok(DeleteOutcome::NotFound),
        }
    }
}

#[async_trait]
impl SendClaims for MemoryStore {
    async fn claim_send(
        &self,
        key: &SendKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<SendClaim, StoreError> {
        let mut state = self.check()?;
        match state.sends.get_mut(&key.as_string()) {
            None => {
                state.sends.insert(
                    key.as_string(),
                    SendRecord {
                        fingerprint: Some(fingerprint.to_owned()),
                        claimed_at: now,
                        message: None,
                    },
                );
                Ok(SendClaim::Claimed)
            }
            Some(record)
                if record
                    .fingerprint
                    .as_deref()
                    .is_some_and(|f| f != fingerprint) =>
            {
                Ok(SendClaim::Conflict)
            }
            Some(SendRecord {
                message: Some((group_id, message_id)),
                ..
            }) => Ok(SendClaim::Done {
                group_id: *group_id,
                message_id: *message_id,
            }),
            Some(record) if record.claimed_at <= now - lease => {
                record.claimed_at = now;
                Ok(SendClaim::Claimed)
            }
            Some(_) => Ok(SendClaim::InProgress),
        }
    }

    async fn release_send(&self, key: &SendKey) -> Result<(), StoreError> {
        let mut state = self.check()?;
        if state
            .sends
            .get(&key.as_string())
            .is_some_and(|record| record.message.is_none())
        {
            state.sends.remove(&key.as_string());
        }
        Ok(())
    }

    async fn complete_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<AppliedSend, StoreError> {
        self.record_applied_send(key, group_id, message_id).await
    }
}

#[async_trait]
impl AppliedSends for MemoryStore {
    async fn record_applied_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<AppliedSend, StoreError> {
        self.record_send(key, group_id, message_id)
    }
}

impl MemoryStore {
    fn record_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<AppliedSend, StoreError> {
        let mut state = self.check()?;
        let record = state
            .sends
            .entry(key.as_string())
            .or_insert_with(|| SendRecord {
                fingerprint: None,
                claimed_at: Utc::now(),
                message: None,
            });
        match record.message {
            Some((group_id, existing)) if existing != message_id => Ok(AppliedSend::Already {
                group_id,
                message_id: existing,
            }),
            Some(_) => Ok(AppliedSend::Recorded),
            None => {
                record.message = Some((group_id, message_id));
                Ok(AppliedSend::Recorded)
            }
        }
    }
}

#[async_trait]
impl chat_core::store::RateLimiter for MemoryStore {
    async fn take(
        &self,
        key: &str,
        limit: chat_core::limits::Limit,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut state = self.check()?;
        let tat = state.buckets.get(key).copied();
        match chat_core::limits::gcra(tat, now_ms, limit) {
            Some(next) => {
                state.buckets.insert(key.to_owned(), next);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn take_up_to(
        &self,
        key: &str,
        limit: chat_core::limits::Limit,
        now_ms: i64,
        wanted: u32,
    ) -> Result<u32, StoreError> {
        let mut state = self.check()?;
        let tat = state.buckets.get(key).copied();
        for n in [wanted.clamp(1, limit.burst.max(1)), 1] {
            if let Some(next) = chat_core::limits::gcra_n(tat, now_ms, limit, n) {
                state.buckets.insert(key.to_owned(), next);
                return Ok(n);
            }
        }
        Ok(0)
    }
}

#[async_trait]
impl ConnectionReader for MemoryStore {
    async fn socket_exists(&self, connection_id: &str) -> Result<bool, StoreError> {
        let state = self.check()?;
        Ok(state.all_groups.contains_key(connection_id)
            || state.connections.keys().any(|(id, _)| id == connection_id))
    }

    async fn get_connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .check()?
            .connections
            .values()
            .find(|c| c.connection_id == connection_id && !c.all_groups)
            .cloned())
    }

    async fn subscription(
        &self,
        connection_id: &str,
        group: GroupId,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .check()?
            .connections
            .get(&(connection_id.to_owned(), group))
            .cloned())
    }

    async fn group_subscriptions(&self, group: GroupId) -> Result<Vec<Connection>, StoreError> {
        Ok(self
            .check()?
            .connections
            .values()
            .filter(|c| c.group_id == group)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl ConnectionWriter for MemoryStore {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut state = self.check()?;
        // A socket opened on one group has one item, whatever group it names again.
        if !connection.all_groups {
            state
                .connections
                .retain(|(id, _), c| *id != connection.connection_id || c.all_groups);
        }
        state.connections.insert(
            (connection.connection_id.clone(), connection.group_id),
            connection.clone(),
        );
        Ok(())
    }

    async fn put_all_groups_socket(
        &self,
        socket: &AllGroupsSocket,
        groups: &[GroupId],
    ) -> Result<(), StoreError> {
        let mut state = self.check()?;
        state
            .all_groups
            .insert(socket.connection_id.clone(), socket.clone());
        for group in groups {
            state.connections.insert(
                (socket.connection_id.clone(), *group),
                socket.subscription(*group),
            );
        }
        Ok(())
    }

    async fn follow_group(
        &self,
        user: UserId,
        group: GroupId,
    ) -> Result<Vec<Connection>, StoreError> {
        let mut state = self.check()?;
        let now = Utc::now();
        let added: Vec<Connection> = state
            .all_groups
            .values()
            .filter(|s| s.user_id == user && s.expires_at > now)
            .map(|s| s.subscription(group))
            .collect();
        for c in &added {
            state
                .connections
                .insert((c.connection_id.clone(), group), c.clone());
        }
        Ok(added)
    }

    async fn delete_subscription(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut state = self.check()?;
        state
            .connections
            .remove(&(connection.connection_id.clone(), connection.group_id));
        uncount(&mut state, connection);
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<Vec<Connection>, StoreError> {
        let mut state = self.check()?;
        state.all_groups.remove(connection_id);
        let mut removed = Vec::new();
        state.connections.retain(|(id, _), c| {
            if id == connection_id {
                removed.push(c.clone());
            }
            id != connection_id
        });
        removed.sort_by_key(|c| c.group_id);
        for c in &removed {
            uncount(&mut state, c);
        }
        Ok(removed)
    }

    async fn count_socket(
        &self,
        user: UserId,
        group: GroupId,
        socket: &SocketSlot,
    ) -> Result<Vec<SocketSlot>, StoreError> {
        let mut state = self.check()?;
        let oldest_allowed = Utc::now() - chrono::Duration::seconds(MAX_SOCKET_SECONDS);
        let slots = state.slots.entry((user, group)).or_default();
        let socket = SocketSlot {
            connected_at: to_millis(socket.connected_at),
            ..socket.clone()
        };
        if !slots.contains(&socket) {
            slots.push(socket);
        }
        slots.retain(|s| s.connected_at > oldest_allowed);
        slots.sort_by(|a, b| {
            (a.connected_at, &a.connection_id).cmp(&(b.connected_at, &b.connection_id))
        });
        Ok(slots.clone())
    }
}

/// Uncounts a forgotten socket or subscription from its user's sockets on its group.
fn uncount(state: &mut State, connection: &Connection) {
    if let Some(user) = connection.user_id {
        if let Some(slots) = state.slots.get_mut(&(user, connection.group_id)) {
            slots.retain(|s| s.connection_id != connection.connection_id);
        }
    }
}

fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chat_core::limits::{Limit, RefusalMemory};
    use chat_core::store::{RateLimiter, StoreError};

    use super::MemoryStore;
    use crate::Fallible;

    #[tokio::test]
    async fn a_chatting_user_takes_from_the_bucket_every_few_actions_and_never_past_it() {
        let store = Arc::new(MemoryStore::new());
        let memory = RefusalMemory::new(store.clone());
        let limit = Limit {
            burst: 20,
            interval: std::time::Duration::from_millis(500),
        };
        let before = store.calls();
        let mut passed = 0;
        for n in 0..40 {
            // Two actions a second at first, then all at once.
            let at = if n < 8 { n * 500 } else { 4_000 };
            passed += usize::from(memory.take("send#1", limit, at).await.expect("take"));
        }
        // Leases of 1, 2, 4, 4 ...: 8 actions at two a second cost 4 calls, not 8.
        let calls = store.calls() - before;
        assert!(calls <= 14, "{calls} store calls for 40 actions");
        // At 4 s: the burst of 20, plus 8 refills, minus what was spent; never more.
        assert!(passed <= 20 + 8, "{passed} passed");
        assert!(passed >= 20, "{passed} passed: the burst at least");
        // Another instance (its own memory) shares the bucket: nothing left for it now.
        let other = RefusalMemory::new(store.clone());
        assert_eq!(other.take("send#1", limit, 4_000).await, Ok(false));
    }

    #[tokio::test]
    async fn a_refusal_is_remembered_for_its_wait_without_asking_the_store() {
        let store = Arc::new(MemoryStore::new());
        let memory = RefusalMemory::new(store.clone());
        let limit = Limit {
            burst: 1,
            interval: std::time::Duration::from_millis(1000),
        };
        assert_eq!(memory.take("send#1", limit, 0).await, Ok(true));
        assert_eq!(memory.take("send#1", limit, 10).await, Ok(false));
        // The store is down, yet the remembered refusal answers: no call is made.
        store.fail_with(StoreError::Unavailable {
            op: "UpdateItem",
            cause: "down".into(),
        });
        assert_eq!(memory.take("send#1", limit, 500).await, Ok(false));
        assert!(
            memory.take("send#2", limit, 500).await.is_err(),
            "others ask"
        );
        store.recover();
        assert_eq!(
            memory.take("send#1", limit, 1010).await,
            Ok(true),
            "its wait is over"
        );
    }
}
