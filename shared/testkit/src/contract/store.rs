//! The store's contract: what every implementation of the store ports does, written once.
//! `chat-testkit`'s own tests run it against [`crate::MemoryStore`] (in `make check`), and
//! `chat-store`'s integration tests against DynamoDB Local (in `make test`), through
//! [`crate::store_contract!`]: where the fake and DynamoDB differ, one of them fails it.
//!
//! Each case takes an empty store of its own.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use chat_core::compat::{seed_groups, seed_users};
use chat_core::domain::{
    AllGroupsSocket, Connection, Group, GroupId, Member, Message, MessageId, MessageText, Role,
    SocketSlot, User, UserId,
};
use chat_core::store::{
    AppliedSend, Cursor, DeleteOutcome, EditOutcome, PageRequest, SendClaim, SendKey, Store,
    StoredMessage, MAX_DELETED_PER_PAGE,
};

use crate::messages::{at, edit, fill, group, ids, message};

/// Runs every case of the store's contract as a test, each on a store `$make` (an expression
/// of a future) gives it: `chat_testkit::store_contract!(async { MemoryStore::new() });`
#[macro_export]
macro_rules! store_contract {
    ($make:expr) => {
        $crate::store_contract!(@cases $make; users_are_stored_read_back_and_listed_in_id_order, an_unknown_user_is_none, putting_a_user_again_replaces_it, groups_are_stored_apart_from_users, inserting_the_same_message_twice_stores_it_once, a_message_is_found_by_id_alone, a_message_is_found_by_its_group_and_id_and_not_from_another_group, unicode_and_multiline_text_round_trips_exactly, a_deleted_message_is_never_resurrected_by_a_replayed_insert, deleting_an_unknown_message_changes_nothing, an_edit_applies_once_and_a_replay_never_reverts_a_later_edit, edits_of_deleted_or_unknown_messages_do_not_apply, concurrent_inserts_of_one_id_store_exactly_one, a_batch_insert_stores_new_messages_and_reports_existing_ones, history_pages_are_oldest_first_and_bounded, walking_back_with_before_visits_every_message_once, an_empty_group_has_an_empty_page, deleted_messages_leave_history_but_pages_stay_full, a_long_run_of_deletions_ends_a_page_early_and_the_next_resumes_past_it, the_first_claim_wins_and_completion_is_remembered, a_released_or_expired_claim_can_be_taken_again, racing_claims_have_exactly_one_winner, the_first_record_of_a_send_is_the_message_and_a_repeat_is_told_so, a_connection_is_stored_read_back_and_deleted, fan_out_finds_only_the_groups_live_connections, a_large_group_is_listed_completely, sockets_are_counted_atomically_and_uncounted_when_forgotten, an_all_groups_socket_follows_joins_and_leaves_and_closes_whole, memberships_are_read_by_group_and_by_user, a_membership_change_applies_only_over_an_older_one_and_a_removal_stays, read_marks_move_forward_only_and_only_for_members, a_created_group_has_its_owner_and_a_taken_id_is_refused, unread_counts_others_live_messages_after_the_mark, an_account_signs_up_once_with_a_group_of_its_own, a_bucket_passes_its_burst_then_one_per_interval_and_buckets_are_apart, several_actions_are_taken_together_else_one);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::contract::store::$case(::std::sync::Arc::new($make.await)).await;
            }
        )*
    };
}

// ---- directory
pub async fn users_are_stored_read_back_and_listed_in_id_order<S: Store + 'static>(store: Arc<S>) {
    for user in seed_users().into_iter().rev() {
        store.put_user(&user).await.expect("put");
    }
    assert_eq!(store.list_users().await.expect("list"), seed_users());
    let bob = store
        .get_user(UserId::new(2).expect("id"))
        .await
        .expect("get");
    assert_eq!(bob.map(|u| u.name), Some("Bob".to_owned()));
}

pub async fn an_unknown_user_is_none<S: Store + 'static>(store: Arc<S>) {
    let nobody = store
        .get_user(UserId::new(99).expect("id"))
        .await
        .expect("get");
    assert_eq!(nobody, None);
    assert!(store.list_users().await.expect("list").is_empty());
}

pub async fn putting_a_user_again_replaces_it<S: Store + 'static>(store: Arc<S>) {
    let mut alice = seed_users()[0].clone();
    store.put_user(&alice).await.expect("put");
    alice.can_delete = true;
    alice.name = "Alice Liddell 🐇".into();
    store.put_user(&alice).await.expect("put again");
    assert_eq!(
        store.get_user(alice.user_id).await.expect("get"),
        Some(alice)
    );
    assert_eq!(store.list_users().await.expect("list").len(), 1);
}

pub async fn groups_are_stored_apart_from_users<S: Store + 'static>(store: Arc<S>) {
    for group in seed_groups() {
        store.put_group(&group).await.expect("put group");
    }
    let user = User {
        user_id: UserId::new(1).expect("id"),
        name: "Only".into(),
        group_id: GroupId::new(1).expect("id"),
        can_edit: false,
        can_delete: false,
    };
    store.put_user(&user).await.expect("put user");
    assert_eq!(
        store
            .get_group(GroupId::new(2).expect("id"))
            .await
            .expect("get"),
        Some(Group {
            group_id: GroupId::new(2).expect("id"),
            name: "Group 2".into()
        })
    );
    assert_eq!(
        store
            .get_group(GroupId::new(3).expect("id"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(store.list_users().await.expect("list"), vec![user]);
}

// ---- messages

pub async fn inserting_the_same_message_twice_stores_it_once<S: Store + 'static>(store: Arc<S>) {
    let m = message(1, 5, "Hello!");
    assert!(store.insert_message(&m).await.expect("first insert"));
    let mut replay = m.clone();
    replay.message = MessageText::new("a different text").expect("text");
    assert!(!store.insert_message(&replay).await.expect("second insert"));
    assert_eq!(
        store.get_message(m.id).await.expect("get"),
        Some(StoredMessage::Live(m))
    );
}

pub async fn a_message_is_found_by_id_alone<S: Store + 'static>(store: Arc<S>) {
    fill(store.as_ref(), 1, [1, 3]).await;
    fill(store.as_ref(), 2, [2, 4]).await;
    match store
        .get_message(MessageId::new(4).expect("id"))
        .await
        .expect("get")
    {
        Some(StoredMessage::Live(m)) => {
            assert_eq!((m.group_id.get(), m.message.as_str()), (2, "message 4"))
        }
        other => panic!("expected message 4, got {other:?}"),
    }
    assert_eq!(
        store
            .get_message(MessageId::new(9).expect("id"))
            .await
            .expect("get"),
        None
    );
}

pub async fn a_message_is_found_by_its_group_and_id_and_not_from_another_group<
    S: Store + 'static,
>(
    store: Arc<S>,
) {
    fill(store.as_ref(), 1, [1, 3]).await;
    fill(store.as_ref(), 2, [2, 4]).await;
    let id = |n: i128| MessageId::new(n).expect("id");
    match store.get_message_in(group(2), id(4)).await.expect("get") {
        Some(StoredMessage::Live(m)) => assert_eq!(m.message.as_str(), "message 4"),
        other => panic!("expected message 4, got {other:?}"),
    }
    assert_eq!(
        store.get_message_in(group(1), id(4)).await.expect("get"),
        None
    );
    assert_eq!(
        store.get_message_in(group(2), id(9)).await.expect("get"),
        None
    );
    let deleted = store
        .delete_message(group(2), id(4), at(60))
        .await
        .expect("delete");
    assert_eq!(deleted, DeleteOutcome::Deleted);
    assert!(matches!(
        store.get_message_in(group(2), id(4)).await.expect("get"),
        Some(StoredMessage::Deleted { group_id, .. }) if group_id == group(2)
    ));
}

pub async fn unicode_and_multiline_text_round_trips_exactly<S: Store + 'static>(store: Arc<S>) {
    let text = "héllo 👋\n\tличное «сообщение» 日本語 \u{202e}rtl";
    let m = message(1, 1, text);
    store.insert_message(&m).await.expect("insert");
    let page = store
        .list_messages(
            group(1),
            PageRequest {
                limit: 10,
                cursor: Cursor::Latest,
            },
        )
        .await
        .expect("list");
    assert_eq!(page.messages[0].message.as_str(), text);
}

pub async fn a_deleted_message_is_never_resurrected_by_a_replayed_insert<S: Store + 'static>(
    store: Arc<S>,
) {
    let m = message(1, 42, "regret");
    store.insert_message(&m).await.expect("insert");
    let outcome = store
        .delete_message(m.group_id, m.id, at(5))
        .await
        .expect("delete");
    assert_eq!(outcome, DeleteOutcome::Deleted);
    assert!(!store.insert_message(&m).await.expect("replayed insert"));
    assert_eq!(
        store.get_message(m.id).await.expect("get"),
        Some(StoredMessage::Deleted {
            id: m.id,
            group_id: m.group_id,
            user_id: m.user_id
        })
    );
    let again = store
        .delete_message(m.group_id, m.id, at(6))
        .await
        .expect("delete again");
    assert_eq!(again, DeleteOutcome::AlreadyDeleted);
}

pub async fn deleting_an_unknown_message_changes_nothing<S: Store + 'static>(store: Arc<S>) {
    let id = MessageId::new(77).expect("id");
    let outcome = store
        .delete_message(group(1), id, at(0))
        .await
        .expect("delete");
    assert_eq!(outcome, DeleteOutcome::NotFound);
    assert_eq!(store.get_message(id).await.expect("get"), None);
    assert!(store
        .insert_message(&message(1, 77, "late"))
        .await
        .expect("insert"));
}

pub async fn an_edit_applies_once_and_a_replay_never_reverts_a_later_edit<S: Store + 'static>(
    store: Arc<S>,
) {
    let m = message(1, 9, "first");
    store.insert_message(&m).await.expect("insert");

    match store
        .edit_message(&edit(&m, "second", 10))
        .await
        .expect("edit")
    {
        EditOutcome::Applied(edited) => {
            assert_eq!(edited.message.as_str(), "second");
            assert_eq!(edited.edited_at, Some(at(10)));
            assert_eq!(edited.created_at, m.created_at);
        }
        other => panic!("expected applied, got {other:?}"),
    }
    assert!(matches!(
        store
            .edit_message(&edit(&m, "third", 20))
            .await
            .expect("edit"),
        EditOutcome::Applied(_)
    ));
    // Replays of both edits, in log order, change nothing.
    for (text, version) in [("second", 10), ("third", 20)] {
        assert_eq!(
            store
                .edit_message(&edit(&m, text, version))
                .await
                .expect("replay"),
            EditOutcome::AlreadyApplied
        );
    }
    match store.get_message(m.id).await.expect("get") {
        Some(StoredMessage::Live(now)) => assert_eq!(now.message.as_str(), "third"),
        other => panic!("expected a live message, got {other:?}"),
    }
}

pub async fn edits_of_deleted_or_unknown_messages_do_not_apply<S: Store + 'static>(store: Arc<S>) {
    let m = message(1, 3, "soon gone");
    store.insert_message(&m).await.expect("insert");
    store
        .delete_message(m.group_id, m.id, at(1))
        .await
        .expect("delete");
    assert_eq!(
        store
            .edit_message(&edit(&m, "too late", 5))
            .await
            .expect("edit"),
        EditOutcome::Deleted
    );
    let unknown = message(1, 4, "never stored");
    assert_eq!(
        store
            .edit_message(&edit(&unknown, "x", 5))
            .await
            .expect("edit"),
        EditOutcome::NotFound
    );
    // The group is part of the key: the right id in the wrong group is not found.
    let live = message(1, 6, "mine");
    store.insert_message(&live).await.expect("insert");
    let mut wrong_group = edit(&live, "hijack", 9);
    wrong_group.group_id = group(2);
    assert_eq!(
        store.edit_message(&wrong_group).await.expect("edit"),
        EditOutcome::NotFound
    );
    assert_eq!(store.get_message(unknown.id).await.expect("get"), None);
}

pub async fn concurrent_inserts_of_one_id_store_exactly_one<S: Store + 'static>(store: Arc<S>) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_message(&message(1, 500, &format!("racer {i}")))
                    .await
                    .expect("insert")
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.expect("task"));
    }
    assert_eq!(winners, 1);
}

pub async fn a_batch_insert_stores_new_messages_and_reports_existing_ones<S: Store + 'static>(
    store: Arc<S>,
) {
    // More than one transaction's worth (100), and a handful (parallel puts); in groups and
    // id ranges of their own.
    batch_insert_keeps_what_exists(store.as_ref(), 1, 0, 130).await;
    batch_insert_keeps_what_exists(store.as_ref(), 2, 1000, 5).await;
}

async fn batch_insert_keeps_what_exists<S: Store>(
    store: &S,
    group_id: i128,
    base: i128,
    size: i128,
) {
    store
        .insert_message(&message(group_id, base + 2, "already here"))
        .await
        .expect("insert");
    store
        .insert_message(&message(group_id, base + 3, "to be deleted"))
        .await
        .expect("insert");
    store
        .delete_message(
            group(group_id),
            MessageId::new(base + 3).expect("id"),
            at(1),
        )
        .await
        .expect("delete");
    let batch: Vec<Message> = (base + 1..=base + size)
        .map(|id| message(group_id, id, &format!("batch {id}")))
        .collect();
    let outcomes = store.insert_messages(&batch).await.expect("batch insert");
    assert_eq!(outcomes.len(), batch.len());
    assert!(
        matches!(&outcomes[1], Some(StoredMessage::Live(m)) if m.message.as_str() == "already here")
    );
    assert!(matches!(&outcomes[2], Some(StoredMessage::Deleted { .. })));
    assert_eq!(
        outcomes.iter().filter(|o| o.is_none()).count(),
        batch.len() - 2
    );
    let page = store
        .list_messages(
            group(group_id),
            PageRequest {
                limit: 1000,
                cursor: Cursor::Latest,
            },
        )
        .await
        .expect("list");
    assert_eq!(
        page.messages.len(),
        batch.len() - 1,
        "the tombstone stays a tombstone"
    );
    assert_eq!(page.messages[1].message.as_str(), "already here");
    // Replaying the same batch changes nothing.
    let again = store.insert_messages(&batch).await.expect("replay");
    assert!(again.iter().all(Option::is_some));
}

// ---- history
pub async fn history_pages_are_oldest_first_and_bounded<S: Store + 'static>(store: Arc<S>) {
    fill(store.as_ref(), 1, 1..=25).await;
    fill(store.as_ref(), 2, 100..=102).await;

    let latest = store
        .list_messages(
            group(1),
            PageRequest {
                limit: 10,
                cursor: Cursor::Latest,
            },
        )
        .await
        .expect("latest");
    assert_eq!(ids(&latest.messages), (16..=25).collect::<Vec<_>>());
    assert!(latest.more);

    let before = store
        .list_messages(
            group(1),
            PageRequest {
                limit: 10,
                cursor: Cursor::Before(MessageId::new(16).expect("id")),
            },
        )
        .await
        .expect("before");
    assert_eq!(ids(&before.messages), (6..=15).collect::<Vec<_>>());

    let after = store
        .list_messages(
            group(1),
            PageRequest {
                limit: 10,
                cursor: Cursor::After(MessageId::new(20).expect("id")),
            },
        )
        .await
        .expect("after");
    assert_eq!(ids(&after.messages), (21..=25).collect::<Vec<_>>());
    assert!(!after.more);

    let other = store
        .list_messages(
            group(2),
            PageRequest {
                limit: 1000,
                cursor: Cursor::Latest,
            },
        )
        .await
        .expect("group 2");
    assert_eq!(ids(&other.messages), vec![100, 101, 102]);
    assert!(!other.more);
}

pub async fn walking_back_with_before_visits_every_message_once<S: Store + 'static>(store: Arc<S>) {
    fill(store.as_ref(), 7, 1..=57).await;
    let mut seen = Vec::new();
    let mut cursor = Cursor::Latest;
    loop {
        let page = store
            .list_messages(group(7), PageRequest { limit: 8, cursor })
            .await
            .expect("page");
        let mut page_ids = ids(&page.messages);
        page_ids.extend(seen);
        seen = page_ids;
        if !page.more {
            break;
        }
        cursor = Cursor::Before(page.messages[0].id);
    }
    assert_eq!(seen, (1..=57).collect::<Vec<_>>());
}

pub async fn an_empty_group_has_an_empty_page<S: Store + 'static>(store: Arc<S>) {
    let page = store
        .list_messages(
            group(3),
            PageRequest {
                limit: 100,
                cursor: Cursor::Latest,
            },
        )
        .await
        .expect("list");
    assert!(page.messages.is_empty() && !page.more);
}

pub async fn deleted_messages_leave_history_but_pages_stay_full<S: Store + 'static>(store: Arc<S>) {
    fill(store.as_ref(), 1, 1..=30).await;
    for id in 11..=25 {
        let outcome = store
            .delete_message(group(1), MessageId::new(id).expect("id"), at(1))
            .await
            .expect("delete");
        assert_eq!(outcome, DeleteOutcome::Deleted);
    }
    let page = store
        .list_messages(
            group(1),
            PageRequest {
                limit: 10,
                cursor: Cursor::Latest,
            },
        )
        .await
        .expect("list");
    assert_eq!(
        ids(&page.messages),
        vec![6, 7, 8, 9, 10, 26, 27, 28, 29, 30]
    );
    assert!(page.more);
}

/// A page reads past at most [`MAX_DELETED_PER_PAGE`] deleted messages, then ends early and
/// says where to resume: a run of deletions costs a bounded read per request, and following
/// the cursors still visits every live message once.
pub async fn a_long_run_of_deletions_ends_a_page_early_and_the_next_resumes_past_it<
    S: Store + 'static,
>(
    store: Arc<S>,
) {
    let run = MAX_DELETED_PER_PAGE as i128 + 100;
    let (first_deleted, last_deleted) = (4, 3 + run);
    let all: Vec<Message> = (1..=last_deleted + 5)
        .map(|id| message(1, id, &format!("message {id}")))
        .collect();
    // In small steps: DynamoDB Local is shared with every other test running.
    for chunk in all.chunks(25) {
        store.insert_messages(chunk).await.expect("insert");
    }
    let deleted = (first_deleted..=last_deleted).collect::<Vec<_>>();
    for chunk in deleted.chunks(8) {
        let outcomes = join_spawned(chunk.iter().map(|&id| {
            let store = store.clone();
            async move {
                store
                    .delete_message(group(1), MessageId::new(id).expect("id"), at(1))
                    .await
            }
        }))
        .await;
        assert!(outcomes
            .into_iter()
            .all(|o| o == Ok(DeleteOutcome::Deleted)));
    }
    let mut seen = Vec::new();
    let mut cursor = Cursor::Latest;
    let mut pages = Vec::new();
    loop {
        let page = store
            .list_messages(group(1), PageRequest { limit: 10, cursor })
            .await
            .expect("page");
        let mut page_ids = ids(&page.messages);
        pages.push((page_ids.clone(), page.resume));
        page_ids.extend(seen);
        seen = page_ids;
        if !page.more {
            break;
        }
        let next = page
            .resume
            .or(page.messages.first().map(|m| m.id))
            .expect("a page with more says where to go on");
        cursor = Cursor::Before(next);
        assert!(pages.len() < 5, "pages: {pages:?}");
    }
    let newest: Vec<u64> = (last_deleted as u64 + 1..=last_deleted as u64 + 5).collect();
    assert_eq!(pages[0].0, newest, "pages: {pages:?}");
    let resume = pages[0].1.expect("the first page ended early").get();
    assert!(
        (first_deleted as u64..=last_deleted as u64).contains(&resume),
        "resumes within the deletions, at {resume}"
    );
    assert_eq!(pages.len(), 2, "pages: {pages:?}");
    assert_eq!(seen, [vec![1, 2, 3], newest].concat());
}

// ---- idempotency
fn key(id: &str) -> SendKey {
    SendKey {
        user_id: UserId::new(1).expect("id"),
        client_message_id: id.to_owned(),
    }
}

pub async fn the_first_claim_wins_and_completion_is_remembered<S: Store + 'static>(store: Arc<S>) {
    let lease = Duration::seconds(30);
    let now = Utc::now();
    assert_eq!(
        store.claim_send(&key("a"), "fp", now, lease).await,
        Ok(SendClaim::Claimed)
    );
    assert_eq!(
        store.claim_send(&key("a"), "fp", now, lease).await,
        Ok(SendClaim::InProgress)
    );
    let (group_id, message_id) = (
        GroupId::new(1).expect("id"),
        MessageId::new(77).expect("id"),
    );
    store
        .complete_send(&key("a"), group_id, message_id)
        .await
        .expect("complete");
    assert_eq!(
        store.claim_send(&key("a"), "fp", now, lease).await,
        Ok(SendClaim::Done {
            group_id,
            message_id
        })
    );
    assert_eq!(
        store.claim_send(&key("a"), "other", now, lease).await,
        Ok(SendClaim::Conflict)
    );
    // A completed send is not released by a late failure path.
    store.release_send(&key("a")).await.expect("release");
    assert!(matches!(
        store.claim_send(&key("a"), "fp", now, lease).await,
        Ok(SendClaim::Done { .. })
    ));
}

pub async fn a_released_or_expired_claim_can_be_taken_again<S: Store + 'static>(store: Arc<S>) {
    let lease = Duration::seconds(30);
    let now = Utc::now();
    assert_eq!(
        store.claim_send(&key("b"), "fp", now, lease).await,
        Ok(SendClaim::Claimed)
    );
    store.release_send(&key("b")).await.expect("release");
    assert_eq!(
        store.claim_send(&key("b"), "fp", now, lease).await,
        Ok(SendClaim::Claimed)
    );
    let later = now + Duration::seconds(31);
    assert_eq!(
        store.claim_send(&key("b"), "fp", later, lease).await,
        Ok(SendClaim::Claimed)
    );
    assert_eq!(
        store.claim_send(&key("b"), "fp", later, lease).await,
        Ok(SendClaim::InProgress)
    );
}

pub async fn racing_claims_have_exactly_one_winner<S: Store + 'static>(store: Arc<S>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .claim_send(&key("race"), "fp", Utc::now(), Duration::seconds(30))
                .await
                .expect("claim")
        });
    }
    let mut winners = 0;
    while let Some(claim) = tasks.join_next().await {
        winners += usize::from(claim.expect("task") == SendClaim::Claimed);
    }
    assert_eq!(winners, 1);
}

pub async fn the_first_record_of_a_send_is_the_message_and_a_repeat_is_told_so<
    S: Store + 'static,
>(
    store: Arc<S>,
) {
    let group_id = GroupId::new(1).expect("id");
    let (first, repeat) = (
        MessageId::new(5).expect("id"),
        MessageId::new(9).expect("id"),
    );
    // The stream processor applies the first record before the API completes its claim.
    assert_eq!(
        store
            .claim_send(&key("c"), "fp", Utc::now(), Duration::seconds(30))
            .await,
        Ok(SendClaim::Claimed)
    );
    assert_eq!(
        store.record_applied_send(&key("c"), group_id, first).await,
        Ok(AppliedSend::Recorded)
    );
    // The same record again (a retried batch) is still the send's message.
    assert_eq!(
        store.record_applied_send(&key("c"), group_id, first).await,
        Ok(AppliedSend::Recorded)
    );
    assert_eq!(
        store.record_applied_send(&key("c"), group_id, repeat).await,
        Ok(AppliedSend::Already {
            group_id,
            message_id: first
        })
    );
    assert_eq!(
        store.complete_send(&key("c"), group_id, repeat).await,
        Ok(AppliedSend::Already {
            group_id,
            message_id: first
        })
    );
    // A send the API never claimed (its claim expired) is recorded all the same.
    assert_eq!(
        store.record_applied_send(&key("d"), group_id, repeat).await,
        Ok(AppliedSend::Recorded)
    );
}

// ---- connections
fn connection(id: &str, group: i128, lifetime: Duration) -> Connection {
    let now = Utc::now();
    Connection {
        connection_id: id.to_owned(),
        group_id: GroupId::new(group).expect("group"),
        user_id: None,
        all_groups: false,
        // Whole seconds: the expiry is stored as epoch seconds (the TTL attribute's format).
        connected_at: chrono::DateTime::from_timestamp(now.timestamp(), 0).expect("time"),
        expires_at: chrono::DateTime::from_timestamp((now + lifetime).timestamp(), 0)
            .expect("time"),
    }
}

fn sorted_ids(connections: &[Connection]) -> Vec<&str> {
    let mut ids: Vec<&str> = connections
        .iter()
        .map(|c| c.connection_id.as_str())
        .collect();
    ids.sort_unstable();
    ids
}

pub async fn a_connection_is_stored_read_back_and_deleted<S: Store + 'static>(store: Arc<S>) {
    let c = connection("Abc123=", 1, Duration::hours(2));
    store.put_connection(&c).await.expect("put");
    assert_eq!(store.get_connection("Abc123=").await.expect("get"), Some(c));
    // A verified user's socket keeps its user, for the per-user limit.
    let mut owned = connection("Own456=", 1, Duration::hours(2));
    owned.user_id = Some(UserId::new(2).expect("user"));
    store.put_connection(&owned).await.expect("put");
    assert_eq!(
        store.get_connection("Own456=").await.expect("get"),
        Some(owned)
    );
    store.delete_connection("Own456=").await.expect("delete");
    store.delete_connection("Abc123=").await.expect("delete");
    assert_eq!(store.get_connection("Abc123=").await.expect("get"), None);
    // Deleting again (a late $disconnect after a 410 clean-up) is not an error.
    store
        .delete_connection("Abc123=")
        .await
        .expect("delete again");
}

pub async fn fan_out_finds_only_the_groups_live_connections<S: Store + 'static>(store: Arc<S>) {
    for c in [
        connection("a", 1, Duration::hours(2)),
        connection("b", 1, Duration::hours(2)),
        connection("c", 2, Duration::hours(2)),
        connection("expired", 1, Duration::seconds(-5)),
    ] {
        store.put_connection(&c).await.expect("put");
    }
    let group1 = store
        .connections_for_group(GroupId::new(1).expect("group"))
        .await
        .expect("query");
    assert_eq!(sorted_ids(&group1), ["a", "b"]);
    // The expired one too, for the stream processor to close, until it is forgotten.
    let with_expired = store
        .group_subscriptions(GroupId::new(1).expect("group"))
        .await
        .expect("query");
    assert_eq!(sorted_ids(&with_expired), ["a", "b", "expired"]);
    let now = Utc::now();
    assert_eq!(
        with_expired.iter().filter(|c| !c.is_live(now)).count(),
        1,
        "{with_expired:?}"
    );
    let group3 = store
        .connections_for_group(GroupId::new(3).expect("group"))
        .await
        .expect("query");
    assert!(group3.is_empty());
}

pub async fn an_all_groups_socket_follows_joins_and_leaves_and_closes_whole<S: Store + 'static>(
    store: Arc<S>,
) {
    let g = |n: i128| GroupId::new(n).expect("group");
    let dave = UserId::new(4).expect("user");
    let template = connection("All789=", 1, Duration::hours(2));
    let socket = AllGroupsSocket {
        connection_id: template.connection_id.clone(),
        user_id: dave,
        connected_at: template.connected_at,
        expires_at: template.expires_at,
    };
    let one_group = connection("One000=", 1, Duration::hours(2));
    store.put_connection(&one_group).await.expect("put");
    store
        .put_all_groups_socket(&socket, &[g(1), g(2)])
        .await
        .expect("put");
    // Listed in each of its groups as itself, beside the group's other sockets.
    let group1 = store.connections_for_group(g(1)).await.expect("query");
    assert_eq!(sorted_ids(&group1), ["All789=", "One000="]);
    assert!(group1.contains(&socket.subscription(g(1))));
    assert_eq!(
        store.subscription("All789=", g(2)).await.expect("get"),
        Some(socket.subscription(g(2)))
    );
    assert_eq!(
        store.subscription("All789=", g(3)).await.expect("get"),
        None
    );
    assert_eq!(
        store.subscription("One000=", g(1)).await.expect("get"),
        Some(one_group.clone())
    );
    assert_eq!(
        store.subscription("One000=", g(2)).await.expect("get"),
        None
    );
    assert_eq!(store.get_connection("All789=").await.expect("get"), None);
    // A join subscribes the user's all-groups sockets, again without harm; not others'.
    for _ in 0..2 {
        let added = store.follow_group(dave, g(3)).await.expect("follow");
        assert_eq!(added, [socket.subscription(g(3))]);
    }
    let nobodys = store
        .follow_group(UserId::new(1).expect("user"), g(3))
        .await
        .expect("follow");
    assert!(nobodys.is_empty());
    // Leaving one group ends that subscription only.
    store
        .delete_subscription(&socket.subscription(g(1)))
        .await
        .expect("leave");
    let group1 = store.connections_for_group(g(1)).await.expect("query");
    assert_eq!(sorted_ids(&group1), ["One000="]);
    // Closing the socket ends what is left of it, and says what that was.
    let mut closed = store.delete_connection("All789=").await.expect("close");
    closed.sort_by_key(|c| c.group_id);
    assert_eq!(
        closed,
        [socket.subscription(g(2)), socket.subscription(g(3))]
    );
    for group in [g(2), g(3)] {
        assert!(store
            .connections_for_group(group)
            .await
            .expect("query")
            .is_empty());
    }
    assert!(store
        .follow_group(dave, g(4))
        .await
        .expect("follow")
        .is_empty());
    assert_eq!(
        store.delete_connection("One000=").await.expect("close"),
        [one_group]
    );
}

pub async fn a_large_group_is_listed_completely<S: Store + 'static>(store: Arc<S>) {
    // Enough items that the index Query needs more than one page (1 MB per page).
    let padding = "x".repeat(300);
    let expected: Vec<String> = (0..400).map(|i| format!("conn-{i:04}-{padding}")).collect();
    // 20 at a time: 400 at once queue in the DynamoDB Local every test shares until some
    // pass the client's 1.5 s attempt timeout.
    for chunk in expected.chunks(20) {
        let puts = chunk.iter().map(|id| {
            let store = store.clone();
            let c = connection(id, 5, Duration::hours(1));
            async move { store.put_connection(&c).await }
        });
        for result in join_spawned(puts).await {
            result.expect("put");
        }
    }
    let found = store
        .connections_for_group(GroupId::new(5).expect("group"))
        .await
        .expect("query");
    assert_eq!(found.len(), expected.len());
}

/// The per-user socket cap's count: one atomic update per socket, so that of parallel
/// connects each sees every socket counted before its own, and the last sees them all.
pub async fn sockets_are_counted_atomically_and_uncounted_when_forgotten<S: Store + 'static>(
    store: Arc<S>,
) {
    let (u, g) = (user(1), GroupId::new(1).expect("group"));
    let now = Utc::now();
    let slot = move |i: i64| SocketSlot {
        connection_id: format!("p{i}"),
        connected_at: DateTime::from_timestamp_millis(now.timestamp_millis() + i).expect("time"),
    };
    let seen = join_spawned((0..20).map(|i| {
        let store = store.clone();
        async move { store.count_socket(u, g, &slot(i)).await.expect("count") }
    }))
    .await;
    let mut sizes: Vec<usize> = seen.iter().map(Vec::len).collect();
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        (1..=20).collect::<Vec<_>>(),
        "each saw those before it"
    );
    let all = seen.iter().max_by_key(|s| s.len()).expect("a count");
    assert_eq!(*all, (0..20).map(slot).collect::<Vec<_>>(), "oldest first");
    // Apart per user and group.
    let other = store
        .count_socket(user(2), g, &slot(0))
        .await
        .expect("count");
    assert_eq!(other.len(), 1);
    // One past a socket's lifetime (its $disconnect lost) no longer counts.
    let stale = SocketSlot {
        connection_id: "stale".into(),
        connected_at: now - Duration::hours(3),
    };
    let counted = store.count_socket(u, g, &stale).await.expect("count");
    assert_eq!(counted.len(), 20, "{counted:?}");
    // Forgetting a socket uncounts it.
    let forgotten = Connection {
        connection_id: "p3".into(),
        group_id: g,
        user_id: Some(u),
        all_groups: false,
        connected_at: slot(3).connected_at,
        expires_at: now + Duration::hours(2),
    };
    store.put_connection(&forgotten).await.expect("put");
    store.delete_connection("p3").await.expect("delete");
    let counted = store.count_socket(u, g, &slot(20)).await.expect("count");
    let ids: Vec<&str> = counted.iter().map(|s| s.connection_id.as_str()).collect();
    assert_eq!(ids.len(), 20, "{ids:?}");
    assert!(
        !ids.contains(&"p3") && ids.last() == Some(&"p20"),
        "{ids:?}"
    );
}

async fn join_spawned<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

// ---- memberships and read marks
fn user(id: i128) -> UserId {
    UserId::new(id).expect("user id")
}

fn member(group_id: i128, user_id: i128, role: Role) -> Member {
    Member {
        group_id: group(group_id),
        user_id: user(user_id),
        role,
        read_mark: 0,
    }
}

pub async fn memberships_are_read_by_group_and_by_user<S: Store + 'static>(store: Arc<S>) {
    for (g, u) in [(1, 1), (1, 2), (2, 1), (3, 3)] {
        store
            .seed_member(&member(g, u, Role::Member))
            .await
            .expect("seed");
    }
    assert_eq!(
        store.membership(group(1), user(2)).await.expect("get"),
        Some(member(1, 2, Role::Member))
    );
    assert_eq!(
        store.membership(group(2), user(2)).await.expect("get"),
        None
    );
    let of_group: Vec<u64> = store
        .members_of(group(1))
        .await
        .expect("members")
        .iter()
        .map(|m| m.user_id.get())
        .collect();
    assert_eq!(of_group, [1, 2]);
    let of_user: Vec<u64> = store
        .groups_of(user(1))
        .await
        .expect("groups")
        .iter()
        .map(|m| m.group_id.get())
        .collect();
    assert_eq!(of_user, [1, 2]);
    assert!(store.groups_of(user(9)).await.expect("none").is_empty());
}

pub async fn a_membership_change_applies_only_over_an_older_one_and_a_removal_stays<
    S: Store + 'static,
>(
    store: Arc<S>,
) {
    let (g, u) = (group(1), user(5));
    assert!(store
        .apply_membership(g, u, Some(Role::Member), 10)
        .await
        .expect("add"));
    assert!(
        !store
            .apply_membership(g, u, Some(Role::Member), 10)
            .await
            .expect("replay"),
        "the same change twice changes nothing the second time"
    );
    assert!(store
        .apply_membership(g, u, Some(Role::Admin), 12)
        .await
        .expect("promote"));
    assert!(store
        .mark_read(g, u, MessageId::new(7).expect("id"))
        .await
        .expect("read"));
    assert!(store
        .apply_membership(g, u, None, 14)
        .await
        .expect("remove"));
    assert!(
        !store
            .apply_membership(g, u, Some(Role::Admin), 12)
            .await
            .expect("replayed promotion"),
        "an older change never undoes a later one"
    );
    assert_eq!(store.membership(g, u).await.expect("get"), None);
    assert!(store.members_of(g).await.expect("members").is_empty());
    assert!(store.groups_of(u).await.expect("groups").is_empty());
    store
        .seed_member(&member(1, 5, Role::Member))
        .await
        .expect("seed");
    assert_eq!(
        store.membership(g, u).await.expect("get"),
        None,
        "set-up's seed does not bring a removed member back"
    );
    assert!(store
        .apply_membership(g, u, Some(Role::Member), 20)
        .await
        .expect("added again"));
    assert_eq!(
        store.membership(g, u).await.expect("get").map(|m| m.role),
        Some(Role::Member)
    );
}

pub async fn read_marks_move_forward_only_and_only_for_members<S: Store + 'static>(store: Arc<S>) {
    let (g, u) = (group(1), user(1));
    let id = |n: i128| MessageId::new(n).expect("id");
    assert!(
        !store.mark_read(g, u, id(5)).await.expect("non-member"),
        "no mark for a non-member"
    );
    assert_eq!(store.membership(g, u).await.expect("get"), None);
    store
        .seed_member(&member(1, 1, Role::Member))
        .await
        .expect("seed");
    assert!(store.mark_read(g, u, id(5)).await.expect("mark"));
    assert!(!store.mark_read(g, u, id(3)).await.expect("back"));
    assert!(!store.mark_read(g, u, id(5)).await.expect("same"));
    let read = |m: Option<Member>| m.map(|m| m.read_mark);
    assert_eq!(read(store.membership(g, u).await.expect("get")), Some(5));
    assert!(store
        .apply_membership(g, u, Some(Role::Admin), 9)
        .await
        .expect("promote"));
    assert_eq!(
        read(store.membership(g, u).await.expect("get")),
        Some(5),
        "a role change keeps the read mark"
    );
}

pub async fn a_created_group_has_its_owner_and_a_taken_id_is_refused<S: Store + 'static>(
    store: Arc<S>,
) {
    let team = Group {
        group_id: group(1_000_001),
        name: "Team ☕".into(),
    };
    assert!(store.create_group(&team, user(3)).await.expect("create"));
    assert_eq!(
        store.get_group(team.group_id).await.expect("get"),
        Some(team.clone())
    );
    assert_eq!(
        store
            .membership(team.group_id, user(3))
            .await
            .expect("owner"),
        Some(member(1_000_001, 3, Role::Owner))
    );
    let other = Group {
        group_id: team.group_id,
        name: "Impostor".into(),
    };
    assert!(!store.create_group(&other, user(4)).await.expect("taken"));
    assert_eq!(
        store
            .get_group(team.group_id)
            .await
            .expect("get")
            .map(|g| g.name),
        Some(team.name)
    );
    assert_eq!(
        store.membership(team.group_id, user(4)).await.expect("get"),
        None
    );
}

pub async fn unread_counts_others_live_messages_after_the_mark<S: Store + 'static>(store: Arc<S>) {
    // Alice (1) wrote 1..=3; Bob (2) wrote 4..=8, of which 6 is deleted.
    fill(store.as_ref(), 1, 1..=3).await;
    for id in 4..=8 {
        let mut m = message(1, id, "from Bob");
        m.user_id = user(2);
        store.insert_message(&m).await.expect("insert");
    }
    fill(store.as_ref(), 2, 100..=104).await;
    store
        .delete_message(group(1), MessageId::new(6).expect("id"), at(1))
        .await
        .expect("delete");
    let unread = |reader: i128, after: u64| {
        let store = store.clone();
        async move {
            store
                .unread_count(group(1), user(reader), after)
                .await
                .expect("count")
        }
    };
    assert_eq!(unread(1, 0).await, 4);
    assert_eq!(unread(1, 5).await, 2);
    assert_eq!(unread(1, 8).await, 0);
    assert_eq!(unread(2, 0).await, 3);
    assert_eq!(unread(3, 0).await, 7);
}

// ---- sign-up
pub async fn an_account_signs_up_once_with_a_group_of_its_own<S: Store + 'static>(store: Arc<S>) {
    let dana = User {
        user_id: user(1_000_000_000_001),
        name: "Dana".into(),
        group_id: group(1_000_000_000_001),
        can_edit: true,
        can_delete: true,
    };
    let hers = Group {
        group_id: dana.group_id,
        name: "Dana".into(),
    };
    assert_eq!(store.account_user("sub-dana").await.expect("get"), None);
    assert_eq!(
        store
            .sign_up("sub-dana", &dana, &hers)
            .await
            .expect("sign up"),
        Some(dana.user_id)
    );
    assert_eq!(
        store.account_user("sub-dana").await.expect("get"),
        Some(dana.user_id)
    );
    assert_eq!(
        store.get_user(dana.user_id).await.expect("user"),
        Some(dana.clone())
    );
    assert_eq!(
        store
            .membership(hers.group_id, dana.user_id)
            .await
            .expect("member")
            .map(|m| m.role),
        Some(Role::Owner)
    );
    // A retried sign-up changes nothing; another account cannot take her ids.
    let mut again = dana.clone();
    again.user_id = user(1_000_000_000_002);
    assert_eq!(
        store
            .sign_up("sub-dana", &again, &hers)
            .await
            .expect("again"),
        Some(dana.user_id)
    );
    let mut eve = dana.clone();
    eve.name = "Eve".into();
    assert_eq!(
        store.sign_up("sub-eve", &eve, &hers).await.expect("taken"),
        None
    );
    assert_eq!(store.account_user("sub-eve").await.expect("get"), None);
    assert_eq!(store.list_users().await.expect("users"), [dana]);
}

// ---- rate limits
pub async fn a_bucket_passes_its_burst_then_one_per_interval_and_buckets_are_apart<
    S: Store + 'static,
>(
    store: Arc<S>,
) {
    let limit = chat_core::limits::Limit {
        burst: 3,
        interval: std::time::Duration::from_millis(1000),
    };
    let now = Utc::now().timestamp_millis();
    let mut passed = Vec::new();
    for _ in 0..5 {
        passed.push(store.take("send#1", limit, now).await.expect("take"));
    }
    assert_eq!(passed, [true, true, true, false, false]);
    assert!(
        store.take("send#2", limit, now).await.expect("take"),
        "another user's"
    );
    assert!(
        store.take("edit#1", limit, now).await.expect("take"),
        "another action's"
    );
    assert!(!store.take("send#1", limit, now + 999).await.expect("take"));
    assert!(
        store.take("send#1", limit, now + 1000).await.expect("take"),
        "refilled"
    );
    assert!(!store.take("send#1", limit, now + 1000).await.expect("take"));
    // Idle long enough, the bucket is full again, and no fuller.
    let later = now + 60_000;
    let mut passed = Vec::new();
    for _ in 0..4 {
        passed.push(store.take("send#1", limit, later).await.expect("take"));
    }
    assert_eq!(passed, [true, true, true, false]);
}

/// A lease: `wanted` actions at once if the bucket holds them all, else one, else none; never
/// more than the burst.
pub async fn several_actions_are_taken_together_else_one<S: Store + 'static>(store: Arc<S>) {
    let limit = chat_core::limits::Limit {
        burst: 4,
        interval: std::time::Duration::from_millis(1000),
    };
    let now = Utc::now().timestamp_millis();
    let take = |wanted: u32, at: i64| {
        let store = store.clone();
        async move {
            store
                .take_up_to("send#lease", limit, at, wanted)
                .await
                .expect("take")
        }
    };
    assert_eq!(take(3, now).await, 3, "3 of a full bucket of 4");
    assert_eq!(take(3, now).await, 1, "only one left: one");
    assert_eq!(take(3, now).await, 0);
    assert!(!store.take("send#lease", limit, now).await.expect("take"));
    assert_eq!(take(2, now + 1000).await, 1, "one refilled");
    assert_eq!(
        take(10, now + 60_000).await,
        4,
        "idle: the whole burst, no more"
    );
    assert_eq!(take(1, now + 60_000).await, 0);
}
