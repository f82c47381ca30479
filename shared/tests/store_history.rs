//! A group's history in DynamoDB Local: pages oldest first, bounded, walked with cursors, full
//! even where messages were deleted.

use shared::domain::MessageId;
use shared::store::{Cursor, DeleteOutcome, Messages, PageRequest};
use test_support::messages::{at, fill, group, ids};

#[tokio::test]
async fn history_pages_are_oldest_first_and_bounded() {
    let store = test_support::own_store().await;
    fill(&store, 1, 1..=25).await;
    fill(&store, 2, 100..=102).await;

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

#[tokio::test]
async fn walking_back_with_before_visits_every_message_once() {
    let store = test_support::own_store().await;
    fill(&store, 7, 1..=57).await;
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

#[tokio::test]
async fn an_empty_group_has_an_empty_page() {
    let store = test_support::own_store().await;
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

#[tokio::test]
async fn deleted_messages_leave_history_but_pages_stay_full() {
    let store = test_support::own_store().await;
    fill(&store, 1, 1..=30).await;
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
