//! The REST API over HTTP, through the API Gateway emulator and `cargo lambda watch`, against
//! the real broker and DynamoDB Local.

use std::collections::HashSet;

use chat_core::compat::seed_users;
use chat_core::domain::MessageId;
use chat_core::events::{ChatEvent, IncomingEvent};
use e2e_tests::{
    api_url, config, fresh_group, fresh_id, http, partition_records, record_at, store,
    stored_message,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn send(body: Value) -> (StatusCode, Value) {
    let response = http()
        .post(format!("{}/send-message/", api_url()))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_send_lands_on_the_topic_with_the_group_as_key() {
    let (status, reply) = send(json!({"user_id": 3, "message": "Hello over HTTP!"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(
        (reply["status"].as_str(), reply["group_id"].as_u64()),
        (Some("Message sent"), Some(2))
    );
    let id = MessageId::new(i128::from(
        reply["message_id"].as_u64().expect("message_id"),
    ))
    .expect("id");
    let (key, value) = record_at(&config(), id.coordinates());
    assert_eq!(key, "2");
    match IncomingEvent::decode(&value).expect("decodes") {
        IncomingEvent::Event(ChatEvent::MessageSent {
            user_id,
            group_id,
            message,
            ..
        }) => {
            assert_eq!(
                (user_id.get(), group_id.get(), message.as_str()),
                (3, 2, "Hello over HTTP!")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn the_original_paths_without_trailing_slash_work_too() {
    let (status, _) = {
        let response = http()
            .post(format!("{}/send-message", api_url()))
            .json(&json!({"user_id": 1, "message": "no slash"}))
            .send()
            .await
            .expect("request");
        (response.status(), ())
    };
    assert_eq!(status, StatusCode::ACCEPTED);
    let users: Value = http()
        .get(format!("{}/users", api_url()))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    // Other tests add users of their own, with larger ids: the original four come first.
    assert!(users.as_array().is_some_and(|u| u.len() >= 4));
    assert_eq!(
        users[0],
        json!({"user_id": 1, "name": "Alice", "group_id": 1, "can_edit": true, "can_delete": false})
    );
}

#[tokio::test]
async fn edit_and_delete_follow_the_permission_rules_for_each_seed_user() {
    let store = store().await;
    let users = seed_users();
    for author in &users {
        for actor in &users {
            let message = stored_message(&store, author, author.group_id, fresh_id()).await;
            let edit = http()
                .put(format!(
                    "{}/edit-message/{}?user_id={}&new_text=edited+text",
                    api_url(),
                    message.id,
                    actor.user_id
                ))
                .send()
                .await
                .expect("request");
            let may_edit = actor.user_id == author.user_id && actor.can_edit;
            // Another group's message is not there for this user.
            let visible = actor.group_id == author.group_id;
            let expected = match (may_edit, visible) {
                (true, _) => StatusCode::ACCEPTED,
                (false, true) => StatusCode::FORBIDDEN,
                (false, false) => StatusCode::NOT_FOUND,
            };
            assert_eq!(
                edit.status(),
                expected,
                "{} editing {}'s message",
                actor.name,
                author.name
            );

            let delete = http()
                .delete(format!(
                    "{}/delete-message/{}?user_id={}",
                    api_url(),
                    message.id,
                    actor.user_id
                ))
                .send()
                .await
                .expect("request");
            let may_delete = actor.user_id == author.user_id && actor.can_delete;
            let visible = actor.group_id == author.group_id;
            let expected = match (may_delete, visible) {
                (true, _) => StatusCode::ACCEPTED,
                (false, true) => StatusCode::FORBIDDEN,
                (false, false) => StatusCode::NOT_FOUND,
            };
            let status = delete.status();
            let body: Value = delete.json().await.expect("json");
            assert_eq!(
                status, expected,
                "{} deleting {}'s message: {body}",
                actor.name, author.name
            );
            if may_delete {
                assert_eq!(
                    body,
                    json!({"status": "Message deleted", "message_id": message.id.get()})
                );
            } else {
                assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
            }
        }
    }
}

#[tokio::test]
async fn pagination_walks_250_messages_without_gaps_or_repeats() {
    let store = store().await;
    let group = fresh_group(&store).await;
    let alice = &seed_users()[0];
    let base = fresh_id();
    let expected: Vec<u64> = (0..250).map(|i| base + i).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in expected.chunks(25) {
        let (store, alice, chunk) = (store.clone(), alice.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for id in chunk {
                stored_message(&store, &alice, group, id).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("insert task");
    }
    let mut seen: Vec<u64> = Vec::new();
    let mut url = format!("{}/messages/{group}?limit=40", api_url());
    let mut pages = 0;
    loop {
        let response = http().get(&url).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let next = response
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split(['<', '>']).nth(1))
            .map(|path| format!("{}{path}", api_url()));
        let page: Vec<Value> = response.json().await.expect("json");
        let ids: Vec<u64> = page.iter().filter_map(|m| m["id"].as_u64()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "page not oldest first: {ids:?}"
        );
        seen.splice(0..0, ids);
        pages += 1;
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 7);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn concurrent_sends_with_one_client_message_id_make_one_message() {
    let key = format!("e2e-{}", fresh_id());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let key = key.clone();
        tasks.spawn(async move {
            send(json!({"user_id": 2, "message": "exactly once", "client_message_id": key})).await
        });
    }
    let mut ids = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        let (status, reply) = done.expect("task");
        assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
        ids.insert(reply["message_id"].as_u64().expect("message_id"));
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = MessageId::new(i128::from(*ids.iter().next().expect("one id"))).expect("id");
    let copies = partition_records(&config(), id.coordinates().partition)
        .iter()
        .filter(|value| {
            matches!(IncomingEvent::decode(value),
                Ok(IncomingEvent::Event(ChatEvent::MessageSent { client_message_id: Some(k), .. })) if k == key)
        })
        .count();
    assert_eq!(copies, 1);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json_errors() {
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("GET", "/messages/1/extra", 404),
        ("DELETE", "/users/", 405),
        ("GET", "/send-message/", 405),
        ("POST", "/messages/1", 405),
    ] {
        let response = http()
            .request(
                method.parse().expect("method"),
                format!("{}{path}", api_url()),
            )
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: Value = response.json().await.expect("json error");
        assert!(body["error"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn unknown_things_are_404_and_bad_input_400() {
    let cases = [
        ("GET", "/messages/999999999".to_owned(), None, 404),
        ("GET", "/messages/abc".to_owned(), None, 400),
        (
            "POST",
            "/send-message/".to_owned(),
            Some(json!({"user_id": 42, "message": "hi"})),
            404,
        ),
        (
            "POST",
            "/send-message/".to_owned(),
            Some(json!({"user_id": 1})),
            400,
        ),
        (
            "PUT",
            "/edit-message/123456789?user_id=1&new_text=x".to_owned(),
            None,
            404,
        ),
        ("DELETE", "/delete-message/123456789".to_owned(), None, 400),
    ];
    for (method, path, body, status) in cases {
        let mut request = http().request(
            method.parse().expect("method"),
            format!("{}{path}", api_url()),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
