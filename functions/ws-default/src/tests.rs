use super::*;
use chat_core::domain::Connection;
use chat_core::store::{ConnectionWriter, StoreError};
use chat_testkit::requests::ws_event;
use chat_testkit::{Fallible, MemoryPusher, MemoryStore};
use chrono::Utc;
use serde_json::json;

fn socket(id: &str, group: u64, user: Option<u64>) -> Connection {
    Connection {
        connection_id: id.into(),
        group_id: GroupId::new(i128::from(group)).expect("id"),
        user_id: user.map(|u| UserId::new(i128::from(u)).expect("id")),
        all_groups: false,
        connected_at: Utc::now(),
        expires_at: Utc::now() + chrono::Duration::hours(2),
    }
}

/// Alice (1) and Bob (2) on group 1, Charlie (3) on group 2, and an anonymous socket on 1.
async fn stack() -> (Context, Arc<MemoryStore>, Arc<MemoryPusher>) {
    let store = Arc::new(MemoryStore::seeded());
    let pusher = Arc::new(MemoryPusher::new());
    for (id, group, user) in [
        ("alice", 1, Some(1)),
        ("bob", 1, Some(2)),
        ("charlie", 2, Some(3)),
        ("anonymous", 1, None),
    ] {
        store
            .put_connection(&socket(id, group, user))
            .await
            .expect("put");
        pusher.open(id);
    }
    (
        Context::new(
            &chat_testkit::requests::config(),
            store.clone(),
            Some(pusher.clone()),
        ),
        store,
        pusher,
    )
}

fn frame(connection: &str, body: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ws_event("$default", Some(connection), json!({}));
    event.body = Some(body.into());
    event
}

#[tokio::test]
async fn typing_reaches_the_groups_other_sockets_once_per_interval() {
    let (ctx, _, pusher) = stack().await;
    let typing = r#"{"action": "typing", "group_id": 1}"#;
    assert_eq!(handle(&ctx, frame("alice", typing)).await, Ok(()));
    let expected = [json!({"event": "typing", "group_id": 1, "user_id": 1, "name": "Alice"})];
    assert_eq!(pusher.frames("bob"), expected);
    assert_eq!(pusher.frames("anonymous"), expected);
    assert!(pusher.frames("alice").is_empty(), "not to the typist");
    assert!(pusher.frames("charlie").is_empty(), "not to another group");
    handle(&ctx, frame("alice", typing)).await.expect("again");
    assert_eq!(pusher.frames("bob").len(), 1, "at most one per interval");
    handle(&ctx, frame("bob", typing)).await.expect("bob types");
    assert_eq!(
        pusher.frames("alice").len(),
        1,
        "each user has an interval of their own"
    );
}

#[tokio::test]
async fn other_frames_and_typing_elsewhere_or_anonymously_change_nothing() {
    let (ctx, store, pusher) = stack().await;
    for (connection, body) in [
        (
            "alice",
            r#"{"user_id": 1, "message": "sent over the socket"}"#,
        ),
        ("alice", "not json"),
        ("alice", r#"{"action": "typing", "group_id": 2}"#),
        ("alice", r#"{"action": "typing", "group_id": "1"}"#),
        ("anonymous", r#"{"action": "typing", "group_id": 1}"#),
        ("unknown", r#"{"action": "typing", "group_id": 1}"#),
    ] {
        assert_eq!(
            handle(&ctx, frame(connection, body)).await,
            Ok(()),
            "{body}"
        );
    }
    for socket in ["alice", "bob", "charlie", "anonymous"] {
        assert!(pusher.frames(socket).is_empty(), "{socket}");
    }
    assert!(store.get_connection("alice").await.expect("get").is_some());
}

#[tokio::test]
async fn an_event_without_a_connection_id_is_refused_and_a_store_failure_is_an_error() {
    let (ctx, store, _) = stack().await;
    let event = ws_event("$default", None, json!({}));
    let err = handle(&ctx, event).await.expect_err("refused");
    assert_eq!(err.status(), 400);
    store.fail_with(StoreError::Unavailable {
        op: "GetItem",
        cause: "down".into(),
    });
    let err = handle(&ctx, frame("alice", r#"{"action": "typing"}"#))
        .await
        .expect_err("the store is down");
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn an_all_groups_socket_types_in_the_groups_it_follows_only() {
    let (ctx, store, pusher) = stack().await;
    let everywhere = chat_core::domain::AllGroupsSocket {
        connection_id: "dave".into(),
        user_id: UserId::new(4).expect("id"),
        connected_at: Utc::now(),
        expires_at: Utc::now() + chrono::Duration::hours(2),
    };
    store
        .put_all_groups_socket(&everywhere, &[GroupId::new(2).expect("id")])
        .await
        .expect("put");
    pusher.open("dave");
    for body in [
        r#"{"action": "typing", "group_id": 1}"#,
        r#"{"action": "typing"}"#,
    ] {
        assert_eq!(handle(&ctx, frame("dave", body)).await, Ok(()), "{body}");
    }
    for socket in ["alice", "bob", "anonymous"] {
        assert!(
            pusher.frames(socket).is_empty(),
            "{socket}: not David's group"
        );
    }
    let typing = r#"{"action": "typing", "group_id": 2}"#;
    assert_eq!(handle(&ctx, frame("dave", typing)).await, Ok(()));
    assert_eq!(
        pusher.frames("charlie"),
        [json!({"event": "typing", "group_id": 2, "user_id": 4, "name": "David"})]
    );
}
