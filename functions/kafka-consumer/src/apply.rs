//! Applying one partition's records to DynamoDB, in offset order: decoding, validating
//! against the directory, inserting sends in batches (each send once per `client_message_id`),
//! edits and deletes under the log's authority, and dead-lettering what can never be applied.
//!
//! A partition stops at the first record that meets an infrastructure failure: that record and
//! the ones after it are retried; the ones before it are done.

use std::collections::HashMap;

use chat_core::domain::{
    refusal, Change, GroupId, Member, Message, MessageId, MessageText, RecordCoordinates, Role,
    User, UserId,
};
use chat_core::events::{ChatEvent, IncomingEvent};
use chat_core::guard::not_a_member;
use chat_core::push::Frame;
use chat_core::store::{
    AppliedSend, DeleteOutcome, Directory, EditOutcome, MessageEdit, SendKey, StoreError,
    StoredMessage,
};
use chat_core::KnownUsers;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::batch::{ItemIdentifier, Record};
use crate::fan_out::Outgoing;
use crate::{ProcessError, Processor, Report};

/// Sends whose `client_message_id` is recorded at once.
const RECORD_CONCURRENCY: usize = 16;

/// What one partition did: the frames of what it applied, and where it stopped, if it did.
pub(crate) struct PartitionOutcome {
    pub frames: Vec<Outgoing>,
    pub report: Report,
    pub failed: Option<(ItemIdentifier, ProcessError)>,
}

/// A send waiting to be inserted with the ones next to it.
struct PendingSend<'a> {
    message: Message,
    key: Option<SendKey>,
    record: &'a Record,
}

/// Why a record cannot be applied: dead-letter it, or stop the partition at it.
enum Refused {
    Poison(String),
    Failed(ProcessError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Failed(e.into())
    }
}

impl Processor {
    pub(crate) async fn apply_partition(&self, records: &[Record]) -> PartitionOutcome {
        let mut state = PartitionState {
            users: UserCache {
                batch: HashMap::new(),
                known: &self.users,
                members: HashMap::new(),
            },
            frames: Vec::new(),
            report: Report::default(),
            pending: Vec::new(),
        };
        let failed = self.apply_records(records, &mut state).await.err();
        PartitionOutcome {
            frames: state.frames,
            report: state.report,
            failed,
        }
    }

    async fn apply_records<'a>(
        &self,
        records: &'a [Record],
        state: &mut PartitionState<'a>,
    ) -> Result<(), (ItemIdentifier, ProcessError)> {
        for record in records {
            match self.apply_record(record, state).await {
                Ok(()) => {}
                Err(Refused::Poison(reason)) => {
                    // The sends before it first: should the letter fail, the retry starts at
                    // this record.
                    self.insert(state).await?;
                    self.dead_letter(record, &reason)
                        .await
                        .map_err(|e| (record.identifier(), e))?;
                    state.report.dead_lettered += 1;
                }
                // Sends before this record may be pending: they are retried with it.
                Err(Refused::Failed(e)) => {
                    let first = state.pending.first().map_or(record, |p| p.record);
                    return Err((first.identifier(), e));
                }
            }
        }
        self.insert(state).await
    }

    async fn apply_record<'a>(
        &self,
        record: &'a Record,
        state: &mut PartitionState<'a>,
    ) -> Result<(), Refused> {
        let bytes = record.value_bytes().map_err(Refused::Poison)?;
        let event = IncomingEvent::decode(&bytes).map_err(|e| Refused::Poison(e.to_string()))?;
        let id = MessageId::from_coordinates(RecordCoordinates {
            partition: record.partition,
            offset: record.offset,
        })
        .map_err(|e| Refused::Poison(e.0))?;
        let (user_id, group_id, text, sent_at, key) = match event {
            IncomingEvent::LegacySend { .. } if !self.bare_records => {
                return Err(Refused::Poison(
                    "a record in the original app's shape, and bare records are turned off \
                     (COMPAT_OFF=bare-records)"
                        .into(),
                ))
            }
            IncomingEvent::LegacySend { user_id, message } => {
                let at = record.time().map_err(Refused::Poison)?;
                (user_id, None, message, at, None)
            }
            IncomingEvent::Event(ChatEvent::MessageSent {
                group_id,
                user_id,
                message,
                sent_at,
                client_message_id,
            }) => {
                let key = client_message_id.map(|client_message_id| SendKey {
                    user_id,
                    client_message_id,
                });
                (user_id, Some(group_id), message, sent_at, key)
            }
            IncomingEvent::Event(change) => {
                // A change may refer to the sends before it, and a membership change decides
                // whether the sends after it are allowed.
                self.insert(state)
                    .await
                    .map_err(|(_, e)| Refused::Failed(e))?;
                let applied = match change {
                    ChatEvent::MessageEdited { .. } | ChatEvent::MessageDeleted { .. } => {
                        self.apply_change(&mut state.users, change, id).await?
                    }
                    membership => {
                        self.apply_membership(&mut state.users, membership, id)
                            .await?
                    }
                };
                match applied {
                    Some(frame) => {
                        state.report.applied += 1;
                        state.frames.push(Outgoing::stored(frame, record));
                    }
                    None => state.report.dropped += 1,
                }
                return Ok(());
            }
        };
        let message = self
            .new_message(&mut state.users, id, user_id, group_id, text, sent_at)
            .await?
            .map_err(Refused::Poison)?;
        state.pending.push(PendingSend {
            message,
            key,
            record,
        });
        Ok(())
    }

    /// The message a send creates, or why the send is invalid (unknown user, wrong group).
    async fn new_message(
        &self,
        users: &mut UserCache<'_>,
        id: MessageId,
        user_id: UserId,
        group_id: Option<GroupId>,
        text: MessageText,
        sent_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Result<Message, String>, StoreError> {
        let Some(user) = users.get(self.store.as_ref(), user_id).await? else {
            return Ok(Err(format!("user {user_id} does not exist")));
        };
        let user = user.clone();
        let group_id = group_id.unwrap_or(user.group_id);
        if users
            .member(self.store.as_ref(), group_id, user_id)
            .await?
            .is_none()
        {
            return Ok(Err(not_a_member(user_id, group_id).to_string()));
        }
        Ok(Ok(Message {
            id,
            user_id,
            name: user.name,
            group_id,
            message: text,
            can_edit: user.can_edit,
            can_delete: user.can_delete,
            created_at: sent_at,
            edited_at: None,
        }))
    }

    /// Stores the pending sends together; each yields a `created` frame with the message as
    /// stored (a replay re-announces it unless it has since been deleted). A send published
    /// twice (a client retrying after a timeout) is stored once: the first record wins.
    async fn insert(
        &self,
        state: &mut PartitionState<'_>,
    ) -> Result<(), (ItemIdentifier, ProcessError)> {
        let Some(first) = state.pending.first() else {
            return Ok(());
        };
        let at = first.record.identifier();
        let fail = |e: StoreError| (at.clone(), ProcessError::from(e));
        let store = self.store.as_ref();
        // Owned items: borrowed ones trip the compiler's higher-ranked check on the handler.
        let keyed: Vec<(Option<SendKey>, GroupId, MessageId)> = state
            .pending
            .iter()
            .map(|send| (send.key.clone(), send.message.group_id, send.message.id))
            .collect();
        let duplicate: Vec<bool> = stream::iter(keyed)
            .map(|(key, group_id, id)| async move {
                let Some(key) = key else {
                    return Ok(false);
                };
                Ok::<_, StoreError>(matches!(
                    store.record_applied_send(&key, group_id, id).await?,
                    AppliedSend::Already { message_id, .. } if message_id != id
                ))
            })
            .buffered(RECORD_CONCURRENCY)
            .try_collect()
            .await
            .map_err(fail)?;
        let (fresh, records): (Vec<Message>, Vec<&Record>) = state
            .pending
            .iter()
            .zip(&duplicate)
            .filter(|(_, duplicate)| !**duplicate)
            .map(|(send, _)| (send.message.clone(), send.record))
            .unzip();
        let outcomes = store.insert_messages(&fresh).await.map_err(fail)?;
        state.report.duplicates += state.pending.len() - fresh.len();
        state.report.applied += fresh.len();
        for ((message, outcome), record) in fresh.into_iter().zip(outcomes).zip(records) {
            let frame = match outcome {
                None => Frame::Created(message),
                Some(StoredMessage::Live(current)) => Frame::Created(current),
                Some(StoredMessage::Deleted { .. }) => continue,
            };
            state.frames.push(Outgoing::stored(frame, record));
        }
        state.pending.clear();
        Ok(())
    }

    /// Applies an edit or delete if the log's authority allows it; the frame to push, or
    /// `None` when it was dropped.
    async fn apply_change(
        &self,
        users: &mut UserCache<'_>,
        change: ChatEvent,
        version: MessageId,
    ) -> Result<Option<Frame>, StoreError> {
        let (message_id, group_id, user_id, kind) = match &change {
            ChatEvent::MessageEdited {
                message_id,
                group_id,
                user_id,
                ..
            } => (*message_id, *group_id, *user_id, Change::Edit),
            ChatEvent::MessageDeleted {
                message_id,
                group_id,
                user_id,
                ..
            } => (*message_id, *group_id, *user_id, Change::Delete),
            _ => return Ok(None),
        };
        let Some(user) = users.get(self.store.as_ref(), user_id).await?.cloned() else {
            tracing::warn!(%message_id, %user_id, "dropped a change by an unknown user");
            return Ok(None);
        };
        let role = users
            .member(self.store.as_ref(), group_id, user_id)
            .await?
            .map(|m| m.role);
        let author = match self.store.get_message_in(group_id, message_id).await? {
            Some(StoredMessage::Live(m)) => m.user_id,
            Some(StoredMessage::Deleted {
                user_id: author, ..
            }) => author,
            None => {
                tracing::warn!(%message_id, %group_id, "dropped a change to an unknown message");
                return Ok(None);
            }
        };
        if let Some(reason) = refusal(&user, role, author, message_id, kind) {
            tracing::warn!(%message_id, %user_id, %reason, "dropped a change the sender may not make");
            return Ok(None);
        }
        match change {
            ChatEvent::MessageEdited {
                new_text,
                edited_at,
                ..
            } => {
                let edit = MessageEdit {
                    group_id,
                    message_id,
                    new_text,
                    edited_at,
                    version: version.get(),
                };
                match self.store.edit_message(&edit).await? {
                    EditOutcome::Applied(m) => Ok(Some(Frame::Edited(m))),
                    // A replay: announce the message as it stands, never the older text.
                    EditOutcome::AlreadyApplied => {
                        match self.store.get_message_in(group_id, message_id).await? {
                            Some(StoredMessage::Live(current)) => Ok(Some(Frame::Edited(current))),
                            _ => Ok(None),
                        }
                    }
                    EditOutcome::Deleted | EditOutcome::NotFound => Ok(None),
                }
            }
            ChatEvent::MessageDeleted { deleted_at, .. } => {
                match self
                    .store
                    .delete_message(group_id, message_id, deleted_at)
                    .await?
                {
                    DeleteOutcome::Deleted | DeleteOutcome::AlreadyDeleted => {
                        Ok(Some(Frame::Deleted {
                            id: message_id,
                            group_id,
                        }))
                    }
                    DeleteOutcome::NotFound => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    /// Applies a membership change or a read mark if the log's authority allows it (who may
    /// add, remove, mark), once however often it is delivered; the frame to push, or `None`
    /// when it was dropped.
    async fn apply_membership(
        &self,
        users: &mut UserCache<'_>,
        change: ChatEvent,
        version: MessageId,
    ) -> Result<Option<Frame>, StoreError> {
        let store = self.store.as_ref();
        match change {
            ChatEvent::MemberAdded {
                group_id,
                user_id,
                role,
                by,
                ..
            } => {
                let actor = users.member(store, group_id, by).await?.map(|m| m.role);
                let current = users
                    .member(store, group_id, user_id)
                    .await?
                    .map(|m| m.role);
                if let Some(reason) = add_refusal(actor, current, role) {
                    tracing::warn!(%group_id, %user_id, %by, %reason, "dropped a membership change");
                    return Ok(None);
                }
                if users.get(store, user_id).await?.is_none() {
                    tracing::warn!(%group_id, %user_id, "dropped the addition of an unknown user");
                    return Ok(None);
                }
                store
                    .apply_membership(group_id, user_id, Some(role), version.get())
                    .await?;
                // Applied now or before (a replay): announce it if it is the state.
                let now = users.reread(store, group_id, user_id).await?;
                Ok(now.filter(|m| m.role == role).map(|_| Frame::MemberAdded {
                    group_id,
                    user_id,
                    role,
                }))
            }
            ChatEvent::MemberRemoved {
                group_id,
                user_id,
                by,
                ..
            } => {
                let actor = users.member(store, group_id, by).await?.map(|m| m.role);
                let Some(current) = users
                    .member(store, group_id, user_id)
                    .await?
                    .map(|m| m.role)
                else {
                    // Not a member (any more): a replay of the removal, or nothing to do.
                    return Ok(None);
                };
                let other_owners = if current == Role::Owner {
                    store
                        .members_of(group_id)
                        .await?
                        .iter()
                        .filter(|m| m.role == Role::Owner && m.user_id != user_id)
                        .count()
                } else {
                    1
                };
                if let Some(reason) = remove_refusal(by == user_id, actor, current, other_owners) {
                    tracing::warn!(%group_id, %user_id, %by, %reason, "dropped a membership change");
                    return Ok(None);
                }
                store
                    .apply_membership(group_id, user_id, None, version.get())
                    .await?;
                let now = users.reread(store, group_id, user_id).await?;
                Ok(now.is_none().then_some(Frame::MemberRemoved {
                    group_id,
                    user_id,
                    role: current,
                }))
            }
            ChatEvent::ReadMarked {
                group_id,
                user_id,
                message_id,
                ..
            } => {
                if users.member(store, group_id, user_id).await?.is_none() {
                    return Ok(None);
                }
                let moved = store.mark_read(group_id, user_id, message_id).await?;
                let now = users.reread(store, group_id, user_id).await?;
                // Moved now, or before by this record (a replay): announce it; an older mark
                // changes nothing and says nothing.
                let current = moved || now.is_some_and(|m| m.read_mark == message_id.get());
                Ok(current.then_some(Frame::Read {
                    group_id,
                    user_id,
                    message_id,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// Why `actor` (their role in the group) may not give a member whose role is `current` the
/// role `role`; `None` when allowed. Owners and admins add; only an owner makes or unmakes
/// an owner.
pub(crate) fn add_refusal(
    actor: Option<Role>,
    current: Option<Role>,
    role: Role,
) -> Option<&'static str> {
    match actor {
        None => Some("the one adding is not a member"),
        Some(actor) if !actor.manages() => Some("only an owner or admin may add members"),
        Some(Role::Admin) if role == Role::Owner || current == Some(Role::Owner) => {
            Some("only an owner may make or unmake an owner")
        }
        Some(_) => None,
    }
}

/// Why a removal may not happen; `None` when allowed. Anyone may leave; owners and admins
/// remove others, an admin not an owner; the last owner may not go.
pub(crate) fn remove_refusal(
    leaving: bool,
    actor: Option<Role>,
    current: Role,
    other_owners: usize,
) -> Option<&'static str> {
    if current == Role::Owner && other_owners == 0 {
        return Some("the last owner may not leave");
    }
    if leaving {
        return None;
    }
    match actor {
        Some(Role::Owner) => None,
        Some(Role::Admin) if current != Role::Owner => None,
        Some(Role::Admin) => Some("only an owner may remove an owner"),
        _ => Some("only an owner or admin may remove others"),
    }
}

struct PartitionState<'a> {
    users: UserCache<'a>,
    frames: Vec<Outgoing>,
    report: Report,
    pending: Vec<PendingSend<'a>>,
}

/// The users of one batch: each read once, from the process's recent ones or the directory;
/// and the memberships of this partition, read once and kept as the log changes them (the
/// partition holds every change of its groups, in order).
struct UserCache<'p> {
    batch: HashMap<UserId, Option<User>>,
    known: &'p KnownUsers,
    members: HashMap<(GroupId, UserId), Option<Member>>,
}

impl UserCache<'_> {
    async fn get<S: Directory + ?Sized>(
        &mut self,
        store: &S,
        id: UserId,
    ) -> Result<Option<&User>, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.batch.entry(id) {
            slot.insert(self.known.user(store, id).await?);
        }
        Ok(self.batch.get(&id).and_then(Option::as_ref))
    }

    async fn member<S: Directory + ?Sized>(
        &mut self,
        store: &S,
        group: GroupId,
        user: UserId,
    ) -> Result<Option<&Member>, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.members.entry((group, user)) {
            slot.insert(store.membership(group, user).await?);
        }
        Ok(self.members.get(&(group, user)).and_then(Option::as_ref))
    }

    /// The membership as stored now, after a change.
    async fn reread<S: Directory + ?Sized>(
        &mut self,
        store: &S,
        group: GroupId,
        user: UserId,
    ) -> Result<Option<Member>, StoreError> {
        self.forget(group, user);
        Ok(self.member(store, group, user).await?.cloned())
    }

    fn forget(&mut self, group: GroupId, user: UserId) {
        self.members.remove(&(group, user));
    }
}
