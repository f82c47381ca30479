//! WebSocket connections in DynamoDB Local, found per group through the group index.

use chrono::{Duration, Utc};
use shared::domain::{Connection, GroupId};
use shared::store::Connections;

fn connection(id: &str, group: i128, lifetime: Duration) -> Connection {
    let now = Utc::now();
    Connection {
        connection_id: id.to_owned(),
        group_id: GroupId::new(group).expect("group"),
        user_id: None,
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

#[tokio::test]
async fn a_connection_is_stored_read_back_and_deleted() {
    let store = test_support::own_store().await;
    let c = connection("Abc123=", 1, Duration::hours(2));
    store.put_connection(&c).await.expect("put");
    assert_eq!(store.get_connection("Abc123=").await.expect("get"), Some(c));
    // A verified user's socket keeps its user, for the per-user limit.
    let mut owned = connection("Own456=", 1, Duration::hours(2));
    owned.user_id = Some(shared::domain::UserId::new(2).expect("user"));
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

#[tokio::test]
async fn fan_out_finds_only_the_groups_live_connections() {
    let store = test_support::own_store().await;
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
    let group3 = store
        .connections_for_group(GroupId::new(3).expect("group"))
        .await
        .expect("query");
    assert!(group3.is_empty());
}

#[tokio::test]
async fn a_large_group_is_listed_completely() {
    let store = test_support::own_store().await;
    // Enough items that the index Query needs more than one page (1 MB per page).
    let padding = "x".repeat(300);
    let expected: Vec<String> = (0..400).map(|i| format!("conn-{i:04}-{padding}")).collect();
    let puts = expected.iter().map(|id| {
        let store = store.clone();
        let c = connection(id, 5, Duration::hours(1));
        async move { store.put_connection(&c).await }
    });
    for result in futures_lite_join(puts).await {
        result.expect("put");
    }
    let found = store
        .connections_for_group(GroupId::new(5).expect("group"))
        .await
        .expect("query");
    assert_eq!(found.len(), expected.len());
}

async fn futures_lite_join<F: std::future::Future + Send + 'static>(
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
