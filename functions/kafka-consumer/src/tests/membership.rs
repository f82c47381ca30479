//! Membership changes and read marks applied from the log: the authority's rules, once per
//! change however often delivered, in order with the group's messages, and a removed member's
//! sockets closed after the frame that removes them.

use super::*;
use chat_core::domain::{Role, UserId};
use chat_core::store::{Directory, MembershipWriter};

fn added(group: u64, user: u64, role: &str, by: u64) -> Value {
    json!({"type": "member_added", "group_id": group, "user_id": user, "role": role, "by": by,
           "at": "2026-01-01T00:00:00Z"})
}

fn removed(group: u64, user: u64, by: u64) -> Value {
    json!({"type": "member_removed", "group_id": group, "user_id": user, "by": by,
           "at": "2026-01-01T00:00:00Z"})
}

fn read(group: u64, user: u64, message: u64) -> Value {
    json!({"type": "read_marked", "group_id": group, "user_id": user, "message_id": message,
           "at": "2026-01-01T00:00:00Z"})
}

fn g(id: u64) -> GroupId {
    GroupId::new(i128::from(id)).expect("id")
}

fn u(id: u64) -> UserId {
    UserId::new(i128::from(id)).expect("id")
}

async fn role(f: &Fixture, group: u64, user: u64) -> Option<Role> {
    f.store
        .membership(g(group), u(user))
        .await
        .expect("membership")
        .map(|m| m.role)
}

/// Alice (1) owns group 1, where Bob (2) is a member.
async fn owned() -> Fixture {
    let f = fixture();
    f.store
        .apply_membership(g(1), u(1), Some(Role::Owner), 1)
        .await
        .expect("owner");
    f
}

/// A socket of `user` on `group`.
async fn socket_of(f: &Fixture, connection_id: &str, group: u64, user: u64) {
    connect(f, connection_id, group).await;
    let mut connection = f
        .store
        .get_connection(connection_id)
        .await
        .expect("get")
        .expect("stored");
    connection.user_id = Some(u(user));
    f.store.put_connection(&connection).await.expect("put");
}

#[tokio::test]
async fn an_owner_adds_and_a_member_may_not_and_the_changes_are_pushed() {
    let f = owned().await;
    connect(&f, "watcher", 1).await;
    let outcome = f
        .processor
        .process(&event(&[
            (0, 10, added(1, 3, "admin", 1)),
            (0, 11, added(1, 4, "member", 2)),
            (0, 12, added(1, 99, "member", 1)),
        ]))
        .await
        .expect("processed");
    assert_eq!((outcome.report.applied, outcome.report.dropped), (1, 2));
    assert_eq!(role(&f, 1, 3).await, Some(Role::Admin));
    assert_eq!(role(&f, 1, 4).await, None, "Bob is no admin");
    assert_eq!(role(&f, 1, 99).await, None, "no such user");
    assert_eq!(
        f.pusher.frames("watcher"),
        [json!({"event": "member_added", "group_id": 1, "user_id": 3, "role": "admin"})]
    );
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing_twice_and_never_undoes_a_later_change() {
    let f = owned().await;
    let batch = event(&[
        (0, 10, added(1, 3, "member", 1)),
        (0, 11, removed(1, 3, 1)),
        (0, 12, added(1, 4, "member", 1)),
    ]);
    f.processor.process(&batch).await.expect("first");
    f.processor.process(&batch).await.expect("replay");
    assert_eq!(
        role(&f, 1, 3).await,
        None,
        "the replayed add does not undo the removal"
    );
    assert_eq!(role(&f, 1, 4).await, Some(Role::Member));
    // An older record delivered late changes nothing either.
    f.processor
        .process(&event(&[(0, 10, added(1, 3, "member", 1))]))
        .await
        .expect("late");
    assert_eq!(role(&f, 1, 3).await, None);
}

#[tokio::test]
async fn sends_after_a_removal_in_the_same_batch_are_refused_and_before_it_stored() {
    let f = owned().await;
    let outcome = f
        .processor
        .process(&event(&[
            (0, 0, sent(2, 1, "before")),
            (0, 1, removed(1, 2, 1)),
            (0, 2, sent(2, 1, "after")),
        ]))
        .await
        .expect("processed");
    assert_eq!(texts(&f.store, 1).await, ["before"]);
    assert_eq!(
        outcome.report.dead_lettered, 1,
        "the send after the removal is refused"
    );
}

#[tokio::test]
async fn the_last_owner_stays_and_an_admin_removes_no_owner() {
    let f = owned().await;
    f.store
        .apply_membership(g(1), u(2), Some(Role::Admin), 2)
        .await
        .expect("admin");
    f.processor
        .process(&event(&[
            (0, 10, removed(1, 1, 1)),
            (0, 11, removed(1, 1, 2)),
            (0, 12, added(1, 1, "member", 2)),
        ]))
        .await
        .expect("processed");
    assert_eq!(role(&f, 1, 1).await, Some(Role::Owner));
    // Anyone may leave; an admin removes a member.
    f.processor
        .process(&event(&[(0, 13, removed(1, 2, 2))]))
        .await
        .expect("leave");
    assert_eq!(role(&f, 1, 2).await, None);
}

#[tokio::test]
async fn a_removed_members_socket_gets_the_removal_last_and_is_closed() {
    let f = owned().await;
    socket_of(&f, "bob", 1, 2).await;
    socket_of(&f, "alice", 1, 1).await;
    let outcome = f
        .processor
        .process(&event(&[
            (0, 0, sent(1, 1, "one")),
            (0, 1, removed(1, 2, 1)),
            (0, 2, sent(1, 1, "two")),
        ]))
        .await
        .expect("processed");
    let events = |c: &str| -> Vec<String> {
        f.pusher
            .frames(c)
            .iter()
            .map(|fr| fr["event"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(events("bob"), ["created", "member_removed"]);
    assert_eq!(events("alice"), ["created", "member_removed", "created"]);
    assert_eq!(f.pusher.disconnected(), ["bob"]);
    assert!(f.store.get_connection("bob").await.expect("get").is_none());
    assert_eq!(
        outcome.report.cut_off, 0,
        "an ended socket is not a failure"
    );
}

#[tokio::test]
async fn read_marks_move_forward_for_members_and_are_pushed() {
    let f = owned().await;
    connect(&f, "watcher", 1).await;
    f.processor
        .process(&event(&[
            (0, 20, read(1, 2, 7)),
            (0, 21, read(1, 3, 7)),
            (0, 22, read(1, 2, 5)),
        ]))
        .await
        .expect("processed");
    let mark = f
        .store
        .membership(g(1), u(2))
        .await
        .expect("get")
        .map(|m| m.read_mark);
    assert_eq!(mark, Some(7), "never back, and not for a non-member");
    let frames = f.pusher.frames("watcher");
    assert_eq!(
        frames[0],
        json!({"event": "read", "group_id": 1, "user_id": 2, "message_id": 7})
    );
    assert!(frames.iter().all(|fr| fr["user_id"] == 2));
}

#[tokio::test]
async fn a_store_failure_stops_the_partition_at_the_membership_change() {
    let f = owned().await;
    f.store.fail_with(StoreError::Unavailable {
        op: "UpdateItem",
        cause: "down".into(),
    });
    let batch = event(&[(0, 10, added(1, 3, "member", 1))]);
    let outcome = f.processor.process(&batch).await;
    assert!(outcome.is_err(), "nothing done: the batch fails whole");
    f.store.recover();
    f.processor
        .process(&event(&[(0, 10, added(1, 3, "member", 1))]))
        .await
        .expect("retried");
    assert_eq!(role(&f, 1, 3).await, Some(Role::Member));
}

#[tokio::test]
async fn an_all_groups_socket_follows_a_group_from_its_join_to_its_leave_and_stays_open() {
    let f = owned().await;
    let charlie = chat_core::domain::AllGroupsSocket {
        connection_id: "charlie".into(),
        user_id: u(3),
        connected_at: chrono::Utc::now(),
        expires_at: chrono::Utc::now() + chrono::Duration::hours(2),
    };
    f.store
        .put_all_groups_socket(&charlie, &[g(2)])
        .await
        .expect("put");
    f.pusher.open("charlie");
    let outcome = f
        .processor
        .process(&event(&[
            (0, 0, sent(1, 1, "before")),
            (0, 1, added(1, 3, "member", 1)),
            (0, 2, sent(1, 1, "welcome")),
            (0, 3, removed(1, 3, 1)),
            (0, 4, sent(1, 1, "after")),
        ]))
        .await
        .expect("processed");
    let seen: Vec<(String, String)> = f
        .pusher
        .frames("charlie")
        .iter()
        .map(|fr| {
            (
                fr["event"].as_str().unwrap_or_default().to_owned(),
                fr["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("member_added".to_owned(), String::new()),
            ("created".to_owned(), "welcome".to_owned()),
            ("member_removed".to_owned(), String::new()),
        ]
    );
    assert!(f.pusher.disconnected().is_empty(), "the socket stays open");
    assert_eq!(outcome.report.cut_off, 0);
    assert!(f
        .store
        .subscription("charlie", g(1))
        .await
        .expect("get")
        .is_none());
    assert!(f
        .store
        .subscription("charlie", g(2))
        .await
        .expect("get")
        .is_some());
    // A later message of the group left does not reach it.
    f.processor
        .process(&event(&[(0, 5, sent(1, 1, "later"))]))
        .await
        .expect("processed");
    assert_eq!(f.pusher.frames("charlie").len(), 3);
}

#[tokio::test]
async fn a_socket_past_its_tokens_expiry_is_closed_and_given_nothing() {
    let f = fixture();
    connect(&f, "fresh", 1).await;
    f.pusher.open("expired");
    f.store
        .put_connection(&Connection {
            connection_id: "expired".into(),
            group_id: GroupId::new(1).expect("id"),
            user_id: Some(UserId::new(2).expect("id")),
            all_groups: false,
            connected_at: Utc::now() - chrono::Duration::minutes(61),
            expires_at: Utc::now() - chrono::Duration::seconds(1),
        })
        .await
        .expect("connect");
    let report = f
        .processor
        .process(&event(&[(0, 0, sent(1, 1, "after the token"))]))
        .await
        .expect("processed")
        .report;
    assert_eq!((report.pushed, report.expired), (1, 1));
    assert!(f.pusher.frames("expired").is_empty());
    assert_eq!(f.pusher.frames("fresh").len(), 1);
    assert_eq!(f.pusher.disconnected(), ["expired"]);
    assert_eq!(
        f.store
            .group_subscriptions(GroupId::new(1).expect("id"))
            .await
            .expect("list")
            .len(),
        1,
        "forgotten"
    );
}
