//! The real-time pipeline end to end: REST → Kafka → event source → kafka-consumer →
//! DynamoDB and the Management API → WebSocket clients, all over the real broker, DynamoDB
//! Local, `cargo lambda watch` and the emulators.

use chat_core::store::{ConnectionReader, ConnectionWriter};
use std::time::{Duration, Instant};

use chat_core::domain::{Connection, GroupId};
use e2e_tests::{
    api_url, config, connection_url, fresh_id, fresh_user, http, management, store, subscribe,
    ws_url, Socket,
};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The next `n` JSON frames, failing after 20 s.
async fn frames(socket: &mut Socket, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} frames arrived: {out:?}", out.len()));
        match next {
            Some(Ok(Message::Text(text))) => {
                out.push(serde_json::from_str(text.as_str()).expect("JSON frame"))
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
    out
}

/// Asserts that the socket stays open and no further frame arrives within `wait`.
async fn silent(socket: &mut Socket, wait: Duration) {
    match tokio::time::timeout(wait, socket.next()).await {
        Err(_) => {}
        Ok(Some(Ok(Message::Text(text)))) => panic!("unexpected frame {text}"),
        Ok(other) => panic!("the socket should stay open and quiet, got {other:?}"),
    }
}

async fn post(path: &str, body: Value) -> Value {
    let response = http()
        .post(format!("{}{path}", api_url()))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.expect("json")
}

#[tokio::test]
async fn sends_edits_and_deletes_reach_their_groups_sockets_in_order() {
    let (a, b) = (fresh_user(true).await, fresh_user(true).await);
    let mut socket_a = subscribe(&format!("/subscribe/{}", a.group_id)).await;
    let mut socket_b = subscribe(&format!("/?group_id={}", b.group_id)).await;
    let mut ids_a = Vec::new();
    for i in 0..5 {
        let reply = post(
            "/send-message/",
            json!({"user_id": a.user_id, "message": format!("a{i}")}),
        )
        .await;
        ids_a.push(reply["message_id"].as_u64().expect("id"));
        post(
            "/send-message",
            json!({"user_id": b.user_id, "message": format!("b{i}")}),
        )
        .await;
    }
    let got_a = frames(&mut socket_a, 5).await;
    let got_b = frames(&mut socket_b, 5).await;
    let texts = |frames: &[Value]| {
        frames
            .iter()
            .map(|f| f["message"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&got_a), ["a0", "a1", "a2", "a3", "a4"]);
    assert_eq!(texts(&got_b), ["b0", "b1", "b2", "b3", "b4"]);
    assert_eq!(
        got_a
            .iter()
            .map(|f| f["id"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>(),
        ids_a
    );
    assert!(got_a.iter().all(|f| f["event"] == "created"
        && f["group_id"] == a.group_id.get()
        && f["name"] == "Tester ☃"));

    // An edit, then a delete, arrive after the sends and in order.
    let edit = http()
        .put(format!(
            "{}/edit-message/{}?user_id={}&new_text=a1+edited",
            api_url(),
            ids_a[1],
            a.user_id
        ))
        .send()
        .await
        .expect("edit");
    assert_eq!(edit.status(), StatusCode::ACCEPTED);
    let delete = http()
        .delete(format!("{}/delete-message/{}", api_url(), ids_a[2]))
        .json(&json!({"user_id": a.user_id}))
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), StatusCode::ACCEPTED);
    let changes = frames(&mut socket_a, 2).await;
    assert_eq!(
        (changes[0]["event"].as_str(), changes[0]["id"].as_u64()),
        (Some("edited"), Some(ids_a[1]))
    );
    assert_eq!(changes[0]["message"], "a1 edited");
    assert!(changes[0]["edited_at"].is_string());
    assert_eq!(
        changes[1],
        json!({"id": ids_a[2], "deleted": true, "event": "deleted", "group_id": a.group_id.get()})
    );
    silent(&mut socket_b, Duration::from_millis(500)).await;

    // History agrees with what the socket saw.
    let history: Vec<Value> = http()
        .get(format!("{}/messages/{}", api_url(), a.group_id))
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(texts(&history), ["a0", "a1 edited", "a3", "a4"]);
    assert_eq!(history[1]["id"].as_u64(), Some(ids_a[1]));
}

#[tokio::test]
async fn a_traced_send_is_stamped_at_every_hop_in_order_and_an_untraced_one_not_at_all() {
    let user = fresh_user(false).await;
    let mut socket = subscribe(&format!("/subscribe/{}", user.group_id)).await;
    let posted = chat_core::trace::now_us();
    let reply = http()
        .post(format!("{}/send-message/", api_url()))
        .header(chat_core::trace::REQUEST_HEADER, "1")
        .json(&json!({"user_id": user.user_id, "message": "traced"}))
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), StatusCode::ACCEPTED);
    let handler = chat_core::trace::Trace::parse(
        reply.headers()[chat_core::trace::REQUEST_HEADER]
            .to_str()
            .expect("text"),
    );
    post(
        "/send-message/",
        json!({"user_id": user.user_id, "message": "plain"}),
    )
    .await;
    let got = frames(&mut socket, 2).await;
    let arrived = chat_core::trace::now_us();
    assert_eq!(
        (got[0]["message"].as_str(), got[1]["message"].as_str()),
        (Some("traced"), Some("plain"))
    );
    let hops = [
        "received", "admitted", "checked", "acked", "fetched", "invoking", "started", "stored",
        "pushing",
    ];
    let stamps: Vec<i64> = hops
        .iter()
        .map(|hop| match *hop {
            "admitted" | "checked" | "acked" => handler.get(hop),
            _ => got[0]["trace"][*hop].as_i64(),
        })
        .map(|at| at.unwrap_or_else(|| panic!("a stamp is missing: {handler:?} {}", got[0])))
        .collect();
    assert_eq!(Some(stamps[0]), handler.get("received"));
    // Kafka may hand the record to the event source before the producer hears the ack.
    let in_order = |from: usize, to: usize| stamps[from..=to].windows(2).all(|w| w[0] <= w[1]);
    assert!(in_order(0, 3) && in_order(4, 8), "{hops:?} {stamps:?}");
    assert!(
        posted <= stamps[0] && stamps[8] <= arrived,
        "{posted} {stamps:?} {arrived}"
    );
    assert!(got[1].get("trace").is_none(), "{}", got[1]);
}

#[tokio::test]
async fn a_socket_on_an_unknown_or_malformed_group_is_refused() {
    for (path, status) in [
        ("/subscribe/987654321987", 404),
        ("/subscribe/abc", 400),
        ("/?group_id=-1", 400),
        ("/", 400),
    ] {
        match tokio_tungstenite::connect_async(ws_url(path)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{path}")
            }
            other => panic!("{path}: expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_record_in_the_original_shape_produced_to_kafka_reaches_the_sockets() {
    let user = fresh_user(false).await;
    let mut socket = subscribe(&format!("/subscribe/{}", user.group_id)).await;
    let publisher = chat_kafka::KafkaPublisher::new(&config().kafka).expect("producer");
    let record = json!({"user_id": user.user_id, "message": "Hello, Kafka!"}).to_string();
    use chat_core::publish::Publisher;
    let at = publisher
        .publish(
            &config().kafka.chat_topic,
            &user.group_id.to_string(),
            record.as_bytes(),
        )
        .await
        .expect("produced");
    let frame = &frames(&mut socket, 1).await[0];
    assert_eq!(frame["message"], "Hello, Kafka!");
    assert_eq!(frame["user_id"], user.user_id.get());
    let id = chat_core::domain::MessageId::from_coordinates(at).expect("id");
    assert_eq!(frame["id"], id.get());
}

#[tokio::test]
async fn a_connection_that_is_gone_is_removed_by_the_next_push() {
    let user = fresh_user(false).await;
    let store = store().await;
    let stale = format!("stale{}=", fresh_id());
    store
        .put_connection(&Connection {
            connection_id: stale.clone(),
            group_id: user.group_id,
            user_id: None,
            all_groups: false,
            connected_at: chrono::Utc::now(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(2),
        })
        .await
        .expect("put");
    let mut live = subscribe(&format!("/subscribe/{}", user.group_id)).await;
    post(
        "/send-message/",
        json!({"user_id": user.user_id, "message": "anyone there?"}),
    )
    .await;
    frames(&mut live, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get_connection(&stale).await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "the stale connection was never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let remaining = store
        .connections_for_group(user.group_id)
        .await
        .expect("query");
    assert_eq!(remaining.len(), 1, "the live socket stays");
}

#[tokio::test]
async fn a_closed_socket_is_forgotten_through_disconnect() {
    let user = fresh_user(false).await;
    let store = store().await;
    let socket = subscribe(&format!("/subscribe/{}", user.group_id)).await;
    let group: GroupId = user.group_id;
    assert_eq!(
        store
            .connections_for_group(group)
            .await
            .expect("query")
            .len(),
        1
    );
    drop(socket);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store
        .connections_for_group(group)
        .await
        .expect("query")
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "$disconnect never removed the connection"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_management_api_answers_410_for_unknown_connections_and_enforces_the_size_limit() {
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let url = connection_url("nobody%3D%3D");
        let response = management(method.clone(), &url, b"{}".to_vec()).await;
        assert_eq!(response.status().as_u16(), 410, "{method}");
    }
    let user = fresh_user(false).await;
    let mut socket = subscribe(&format!("/subscribe/{}", user.group_id)).await;
    let connection = store()
        .await
        .connections_for_group(user.group_id)
        .await
        .expect("query");
    let id = &connection[0].connection_id;
    let url = connection_url(id);
    // Knowing a connection id is not enough: unsigned calls are refused, the socket untouched.
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let forged = http()
            .request(method.clone(), &url)
            .header("authorization", "Bearer whatever")
            .body(r#"{"forged":true}"#)
            .send()
            .await
            .expect("unsigned call");
        assert_eq!(forged.status().as_u16(), 403, "unsigned {method}");
    }
    let status = management(reqwest::Method::GET, &url, Vec::new()).await;
    assert_eq!(status.status().as_u16(), 200);
    let too_big = management(reqwest::Method::POST, &url, vec![b'x'; 128 * 1024 + 1]).await;
    assert_eq!(too_big.status().as_u16(), 413);
    let pushed = management(
        reqwest::Method::POST,
        &url,
        br#"{"hello":"socket"}"#.to_vec(),
    )
    .await;
    assert_eq!(pushed.status().as_u16(), 200);
    assert_eq!(frames(&mut socket, 1).await[0], json!({"hello": "socket"}));
    // A client frame over 128 KB closes the socket, as API Gateway does.
    use futures_util::SinkExt;
    socket
        .send(Message::text("y".repeat(128 * 1024 + 1)))
        .await
        .expect("send");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the socket closes");
    assert_eq!(closed, Some(1009));
}
