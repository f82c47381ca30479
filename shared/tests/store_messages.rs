//! Messages in DynamoDB Local: idempotent inserts, lookup by id, edits that a replay cannot
//! revert, and deletes that a replay cannot undo. Paged history is in store_history.rs.

use shared::domain::{Message, MessageId, MessageText, UserId};
use shared::store::{
    Cursor, DeleteOutcome, Directory, EditOutcome, Messages, PageRequest, StoredMessage,
};
use test_support::messages::{at, edit, fill, group, message};

#[tokio::test]
async fn inserting_the_same_message_twice_stores_it_once() {
    let store = test_support::own_store().await;
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

#[tokio::test]
async fn a_message_is_found_by_id_alone() {
    let store = test_support::own_store().await;
    fill(&store, 1, [1, 3]).await;
    fill(&store, 2, [2, 4]).await;
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

#[tokio::test]
async fn a_message_is_found_by_its_group_and_id_and_not_from_another_group() {
    let store = test_support::own_store().await;
    fill(&store, 1, [1, 3]).await;
    fill(&store, 2, [2, 4]).await;
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

#[tokio::test]
async fn unicode_and_multiline_text_round_trips_exactly() {
    let store = test_support::own_store().await;
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

#[tokio::test]
async fn a_deleted_message_is_never_resurrected_by_a_replayed_insert() {
    let store = test_support::own_store().await;
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

#[tokio::test]
async fn deleting_an_unknown_message_changes_nothing() {
    let store = test_support::own_store().await;
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

#[tokio::test]
async fn an_edit_applies_once_and_a_replay_never_reverts_a_later_edit() {
    let store = test_support::own_store().await;
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

#[tokio::test]
async fn edits_of_deleted_or_unknown_messages_do_not_apply() {
    let store = test_support::own_store().await;
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

#[tokio::test]
async fn concurrent_inserts_of_one_id_store_exactly_one() {
    let store = test_support::own_store().await;
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

#[tokio::test]
async fn an_unreachable_dynamodb_is_reported_as_unavailable_in_bounded_time() {
    let config = test_support::unreachable_config();
    let store = shared::store::dynamodb::DynamoStore::from_config(&config.dynamodb).await;
    let started = std::time::Instant::now();
    let err = store
        .get_user(UserId::new(1).expect("id"))
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(err, shared::store::StoreError::Unavailable { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let chat: shared::ChatError = err.into();
    assert_eq!(chat.status(), 503);
}

#[tokio::test]
async fn a_batch_insert_stores_new_messages_and_reports_existing_ones() {
    // More than one transaction's worth (100), and a handful (parallel puts).
    batch_insert_keeps_what_exists(130).await;
    batch_insert_keeps_what_exists(5).await;
}

async fn batch_insert_keeps_what_exists(size: i128) {
    let store = test_support::own_store().await;
    store
        .insert_message(&message(1, 2, "already here"))
        .await
        .expect("insert");
    store
        .insert_message(&message(1, 3, "to be deleted"))
        .await
        .expect("insert");
    store
        .delete_message(group(1), MessageId::new(3).expect("id"), at(1))
        .await
        .expect("delete");
    let batch: Vec<Message> = (1..=size)
        .map(|id| message(1, id, &format!("batch {id}")))
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
            group(1),
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
