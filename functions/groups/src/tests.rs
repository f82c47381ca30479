use super::*;
use chat_core::events::IncomingEvent;
use chat_core::store::{MembershipWriter, StoreError};
use chat_testkit::requests::{reply, request, signed_in};
use chat_testkit::{Fakes, Fallible, TestContext};

fn over(fakes: Fakes) -> TestContext<Context> {
    fakes.with(|f| Context::new(&f.config, f.store.clone(), f.publisher.clone()))
}

fn gid(id: u64) -> GroupId {
    GroupId::new(i128::from(id)).expect("id")
}

fn uid(id: u64) -> UserId {
    UserId::new(i128::from(id)).expect("id")
}

/// What the handler published, decoded.
fn published(t: &TestContext<Context>) -> Vec<ChatEvent> {
    t.publisher
        .records()
        .iter()
        .map(
            |r| match IncomingEvent::decode(&r.payload).expect("decodes") {
                IncomingEvent::Event(e) => e,
                other => panic!("unexpected {other:?}"),
            },
        )
        .collect()
}

async fn call(
    t: &TestContext<Context>,
    method: Method,
    path: &[(&str, &str)],
    caller: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    reply(handle(&t.ctx, signed_in(request(method, path, &[], body), caller)).await)
}

#[tokio::test]
async fn a_created_group_has_its_creator_as_owner_and_shows_in_their_list() {
    let t = over(Fakes::jwt());
    let (status, body) = call(&t, Method::POST, &[], "1", Some(r#"{"name": " Team "}"#)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["role"].as_str()),
        (Some("Team"), Some("owner"))
    );
    let group = body["group_id"].as_u64().expect("id");
    assert!(GROUP_IDS.contains(&group));
    let (status, list) = call(&t, Method::GET, &[], "1", None).await;
    assert_eq!(status, 200);
    let ids: Vec<u64> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|g| g["group_id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [1, group]);
    assert_eq!(list[1]["role"], "owner");
    assert_eq!(list[1]["unread"], 0);
    assert!(list[1]["last_message_id"].is_null());
}

#[tokio::test]
async fn group_names_and_bodies_are_checked() {
    let t = over(Fakes::jwt());
    for body in [
        r#"{"name": "  "}"#,
        r#"{"name": 5}"#,
        r#"{}"#,
        r#"{"name": "x", "extra": 1}"#,
    ] {
        let (status, reply) = call(&t, Method::POST, &[], "1", Some(body)).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply["error"].is_string());
    }
    let (status, _) = reply(
        handle(
            &t.ctx,
            request(Method::POST, &[], &[], Some(r#"{"name": "x"}"#)),
        )
        .await,
    );
    assert_eq!(status, 401, "jwt mode needs a token");
}

#[tokio::test]
async fn unread_counts_others_live_messages_after_the_read_mark() {
    let t = over(Fakes::jwt());
    chat_testkit::requests::seed_messages(t.store.as_ref()).await;
    // Alice (1) and Bob (2) are in group 1; Bob's message 20 is unread for Alice.
    let (_, list) = call(&t, Method::GET, &[], "1", None).await;
    assert_eq!(
        (
            list[0]["unread"].as_u64(),
            list[0]["last_message_id"].as_u64()
        ),
        (Some(1), Some(20))
    );
    t.store
        .mark_read(gid(1), uid(1), MessageId::new(20).expect("id"))
        .await
        .expect("marked");
    let (_, list) = call(&t, Method::GET, &[], "1", None).await;
    assert_eq!(list[0]["unread"], 0);
}

#[tokio::test]
async fn members_are_listed_for_members_only() {
    let t = over(Fakes::jwt());
    let (status, list) = call(&t, Method::GET, &[("group_id", "1")], "2", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        list,
        serde_json::json!([
            {"user_id": 1, "name": "Alice", "role": "member", "online": false},
            {"user_id": 2, "name": "Bob", "role": "member", "online": false}
        ])
    );
    let (status, _) = call(&t, Method::GET, &[("group_id", "1")], "3", None).await;
    assert_eq!(
        status, 404,
        "a group not theirs is as one that does not exist"
    );
    let (status, _) = call(&t, Method::GET, &[("group_id", "77")], "3", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn only_owners_and_admins_add_and_the_change_goes_to_the_log() {
    let t = over(Fakes::jwt());
    let path = [("group_id", "1")];
    // Bob is a plain member of group 1.
    let (status, _) = call(&t, Method::POST, &path, "2", Some(r#"{"user_id": 3}"#)).await;
    assert_eq!(status, 403);
    t.store
        .apply_membership(gid(1), uid(2), Some(Role::Owner), 5)
        .await
        .expect("owner");
    let (status, body) = call(
        &t,
        Method::POST,
        &path,
        "2",
        Some(r#"{"user_id": 3, "role": "admin"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"group_id": 1, "user_id": 3, "role": "admin"})
    );
    match published(&t).as_slice() {
        [ChatEvent::MemberAdded {
            group_id,
            user_id,
            role,
            by,
            ..
        }] => {
            assert_eq!(
                (group_id.get(), user_id.get(), *role, by.get()),
                (1, 3, Role::Admin, 2)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(t.publisher.records()[0].key, "1", "keyed by the group");
    let (status, _) = call(&t, Method::POST, &path, "2", Some(r#"{"user_id": 99}"#)).await;
    assert_eq!(status, 404, "an unknown user");
    for bad in [
        r#"{"user_id": 3, "role": "owner"}"#,
        r#"{"user_id": 3, "role": "king"}"#,
        r#"{"user_id": 0}"#,
    ] {
        let (status, _) = call(&t, Method::POST, &path, "2", Some(bad)).await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn removal_rules_leave_remove_and_the_last_owner() {
    let t = over(Fakes::jwt());
    let path = |u: &'static str| [("group_id", "1"), ("user_id", u)];
    // A member may not remove another, but may leave.
    let (status, _) = call(&t, Method::DELETE, &path("1"), "2", None).await;
    assert_eq!(status, 403);
    let (status, _) = call(&t, Method::DELETE, &path("2"), "2", None).await;
    assert_eq!(status, 204);
    // The last owner may not leave; an owner removes anyone.
    t.store
        .apply_membership(gid(1), uid(1), Some(Role::Owner), 5)
        .await
        .expect("owner");
    let (status, body) = call(&t, Method::DELETE, &path("1"), "1", None).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = call(&t, Method::DELETE, &path("2"), "1", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&t, Method::DELETE, &path("3"), "1", None).await;
    assert_eq!(status, 404, "not a member");
    let removals = published(&t)
        .iter()
        .filter(|e| matches!(e, ChatEvent::MemberRemoved { .. }))
        .count();
    assert_eq!(removals, 2);
}

#[tokio::test]
async fn read_marks_move_forward_only_and_name_a_message_of_the_group() {
    let t = over(Fakes::jwt());
    chat_testkit::requests::seed_messages(t.store.as_ref()).await;
    let path = [("group_id", "1")];
    let (status, _) = call(&t, Method::PUT, &path, "1", Some(r#"{"message_id": 20}"#)).await;
    assert_eq!(status, 204);
    assert!(matches!(
        published(&t).as_slice(),
        [ChatEvent::ReadMarked { .. }]
    ));
    let (status, _) = call(&t, Method::PUT, &path, "1", Some(r#"{"message_id": 30}"#)).await;
    assert_eq!(status, 404, "message 30 is group 2's");
    let (status, _) = call(&t, Method::PUT, &path, "3", Some(r#"{"message_id": 20}"#)).await;
    assert_eq!(status, 404, "not their group");
    t.store
        .mark_read(gid(1), uid(1), MessageId::new(20).expect("id"))
        .await
        .expect("marked");
    let (status, _) = call(&t, Method::PUT, &path, "1", Some(r#"{"message_id": 10}"#)).await;
    assert_eq!(status, 204, "an older mark is accepted and changes nothing");
    assert_eq!(published(&t).len(), 1);
}

#[tokio::test]
async fn trust_client_mode_names_the_caller_in_the_query() {
    let t = over(Fakes::trust_client());
    let add = request(
        Method::POST,
        &[("group_id", "1")],
        &[("user_id", "2")],
        Some(r#"{"user_id": 3}"#),
    );
    assert_eq!(reply(handle(&t.ctx, add).await).0, 403, "Bob is no admin");
    let list = request(Method::GET, &[], &[("user_id", "3")], None);
    let (status, body) = reply(handle(&t.ctx, list).await);
    assert_eq!((status, body[0]["group_id"].as_u64()), (200, Some(2)));
    let anonymous = request(Method::GET, &[], &[], None);
    assert_eq!(reply(handle(&t.ctx, anonymous).await).0, 400);
}

#[tokio::test]
async fn failures_are_json_errors() {
    let t = over(Fakes::jwt());
    let (status, _) = call(&t, Method::PATCH, &[], "1", None).await;
    assert_eq!(status, 405);
    let (status, _) = call(&t, Method::GET, &[("group_id", "x")], "1", None).await;
    assert_eq!(status, 400);
    t.store.fail_with(StoreError::Unavailable {
        op: "Query",
        cause: "down".into(),
    });
    let (status, body) = call(&t, Method::GET, &[], "1", None).await;
    assert_eq!((status, body["error"].is_string()), (503, true));
    t.store.recover();
    t.publisher
        .fail_with(PublishError::Unavailable("broker down".into()));
    let (status, _) = call(
        &t,
        Method::DELETE,
        &[("group_id", "1"), ("user_id", "2")],
        "2",
        None,
    )
    .await;
    assert_eq!(status, 503);
}
