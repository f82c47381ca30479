//! Helpers for end-to-end tests over the running local stack (`make test` starts it and
//! exports where it is). A missing service fails the test with what to start.

pub mod load;
pub mod template;
pub mod topics;

pub use topics::topic_records;

use chat_core::store::DirectoryWriter;
use chat_core::store::{MessageReader, MessageWriter};
use std::time::{Duration, Instant};

use chat_core::config::Config;
use chat_core::domain::{
    Group, GroupId, Message, MessageId, MessageText, RecordCoordinates, User, UserId,
};
use chat_core::store::{Cursor, PageRequest};
use chat_kafka::{self as kafka, KafkaContext};
use chat_store::DynamoStore;
use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};

/// Configuration of the running stack; panics naming what is missing.
pub use chat_testkit::services::{config, fresh_id};
use chat_testkit::services::{reachable, require_env, HOW_TO_START};

/// Base URL of the API (the API Gateway emulator), checked to be reachable.
pub fn api_url() -> String {
    reachable_url("CHAT_API_URL", "the chat API")
}

/// The base URL in `var`, checked to be reachable.
fn reachable_url(var: &str, what: &str) -> String {
    let url = require_env(var);
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    assert!(
        reachable(host),
        "{what} is not reachable at {url}: {HOW_TO_START}"
    );
    url.trim_end_matches('/').to_owned()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// The store the functions use (the stack's tables).
pub async fn store() -> DynamoStore {
    DynamoStore::from_config(&config().dynamodb).await
}

/// A group of its own, for tests that need a history no other test writes to.
pub async fn fresh_group(store: &DynamoStore) -> GroupId {
    let group_id = GroupId::new(i128::from(fresh_id())).expect("id");
    store
        .put_group(&Group {
            group_id,
            name: format!("test group {group_id}"),
        })
        .await
        .expect("put group");
    group_id
}

/// A group's whole stored history, oldest first, page by page.
pub async fn full_history(group: GroupId) -> Vec<Message> {
    let store = store().await;
    let mut all: Vec<Message> = Vec::new();
    let mut cursor = Cursor::Latest;
    loop {
        let page = store
            .list_messages(
                group,
                PageRequest {
                    limit: 1000,
                    cursor,
                },
            )
            .await
            .expect("history");
        let more = page.more;
        let first = page.messages.first().map(|m| m.id);
        all.splice(0..0, page.messages);
        match (more, first) {
            (true, Some(id)) => cursor = Cursor::Before(id),
            _ => return all,
        }
    }
}

/// A group's stored history, oldest first (up to 1,000 messages, as the store holds them).
pub async fn history(group: GroupId) -> Vec<Message> {
    store()
        .await
        .list_messages(
            group,
            PageRequest {
                limit: 1000,
                cursor: Cursor::Latest,
            },
        )
        .await
        .expect("history")
        .messages
}

/// A user of its own in a group of its own, so that no other test's events reach its sockets.
pub async fn fresh_user(can_delete: bool) -> User {
    let store = store().await;
    let group_id = fresh_group(&store).await;
    let user = User {
        user_id: UserId::new(i128::from(fresh_id())).expect("id"),
        name: "Tester ☃".into(),
        group_id,
        can_edit: true,
        can_delete,
    };
    store.put_user(&user).await.expect("put user");
    join_first_group(&store, &user).await;
    user
}

/// `count` people chatting in `user`'s group: the user and others who joined it. A load of
/// sends spread over them stays within each person's send limit, as a group chat's does.
pub async fn senders_in_group_of(user: &User, count: usize) -> Vec<u64> {
    let store = store().await;
    let mut senders = vec![user.user_id.get()];
    while senders.len() < count {
        let member = User {
            user_id: UserId::new(i128::from(fresh_id())).expect("id"),
            name: format!("Member {}", senders.len()),
            ..user.clone()
        };
        store.put_user(&member).await.expect("put user");
        join_first_group(&store, &member).await;
        senders.push(member.user_id.get());
    }
    senders
}

/// Makes `user` a member of their first group, as set-up does for every user.
pub async fn join_first_group(store: &DynamoStore, user: &User) {
    store
        .seed_member(&chat_core::domain::Member {
            group_id: user.group_id,
            user_id: user.user_id,
            role: chat_core::domain::Role::Member,
            read_mark: 0,
        })
        .await
        .expect("membership");
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The WebSocket URL of `path` on the API.
pub fn ws_url(path: &str) -> String {
    format!("{}{path}", api_url().replacen("http://", "ws://", 1))
}

/// A socket subscribed through `path` (`/subscribe/{group}` or `/?group_id=`).
pub async fn subscribe(path: &str) -> Socket {
    let (socket, response) = tokio_tungstenite::connect_async(ws_url(path))
        .await
        .expect("handshake");
    assert_eq!(response.status(), 101);
    socket
}

/// Stores a message as the stream processor would, by `author` in `group`.
pub async fn stored_message(
    store: &DynamoStore,
    author: &User,
    group: GroupId,
    id: u64,
) -> Message {
    let message = Message {
        id: MessageId::new(i128::from(id)).expect("id"),
        user_id: author.user_id,
        name: author.name.clone(),
        group_id: group,
        message: MessageText::new(format!("message {id}")).expect("text"),
        can_edit: author.can_edit,
        can_delete: author.can_delete,
        created_at: Utc::now(),
        edited_at: None,
    };
    assert!(store.insert_message(&message).await.expect("insert"));
    message
}

/// The record at `at` in the chat topic: its key and value.
pub fn record_at(config: &Config, at: RecordCoordinates) -> (String, Vec<u8>) {
    let consumer: BaseConsumer<KafkaContext> = kafka::consumer_config(&config.kafka, "e2e-reader")
        .expect("kafka settings")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(
            &config.kafka.chat_topic,
            at.partition,
            Offset::Offset(at.offset),
        )
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let m = result.expect("record");
            return (
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().unwrap_or_default().to_vec(),
            );
        }
    }
    panic!("no record at {at:?} within 20 s");
}

/// Every record of one partition of the chat topic, from the start to its current end.
pub fn partition_records(config: &Config, partition: i32) -> Vec<Vec<u8>> {
    let (records, expected) = topics::read_records(config, &config.kafka.chat_topic, &[partition]);
    assert_eq!(
        records.len() as i64,
        expected,
        "partition {partition}: read {} of {expected}",
        records.len()
    );
    records.into_iter().map(|(_, value)| value).collect()
}

/// The Management API's URL of a connection (already percent-encoded), at the WebSocket stage
/// the functions push to (`WS_MANAGEMENT_ENDPOINT`, as the stack exports it).
pub fn connection_url(encoded_id: &str) -> String {
    format!(
        "{}/@connections/{encoded_id}",
        require_env("WS_MANAGEMENT_ENDPOINT").trim_end_matches('/')
    )
}

/// A Management API call signed with SigV4 as the local administrator, as the AWS SDK signs
/// the stream processor's calls; the emulator verifies the signature and the caller's policies.
pub async fn management(method: reqwest::Method, url: &str, body: Vec<u8>) -> reqwest::Response {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    // The local administrator's credentials (local IAM allows it every call).
    let identity =
        aws_credential_types::Credentials::new("local", "local", None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let signable = SignableRequest::new(
        method.as_str(),
        url,
        std::iter::empty(),
        SignableBody::Bytes(&body),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let mut request = http().request(method, url).body(body.clone());
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    request.send().await.expect("Management API call")
}

/// Base URL of the emulator's address that verifies tokens (`APIGW_JWT_LISTEN`), whatever
/// mode the main address runs in.
pub fn jwt_api_url() -> String {
    reachable_url("CHAT_API_URL_JWT", "the token-verifying API")
}

/// The local issuer the stack trusts (its keys in `AUTH_KEY_DIR`, made by `chatctl`).
pub fn local_issuer() -> chat_auth::LocalIssuer {
    let dir = require_env("AUTH_KEY_DIR");
    assert!(
        std::path::Path::new(&dir).join("jwks.json").exists(),
        "no local issuer keys in {dir}: {HOW_TO_START}"
    );
    chat_auth::LocalIssuer::open_or_create(
        std::path::Path::new(&dir),
        &require_env("AUTH_ISSUER"),
        &require_env("AUTH_AUDIENCE"),
    )
    .expect("the local issuer")
}

/// A request to the token-verifying address, as `token`'s holder: the status and JSON body
/// (`null` when there is none).
pub async fn call_signed_in(
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = http().request(method, format!("{}{path}", jwt_api_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Waits up to 20 s for `check` to hold, polling; panics naming `what` if it never does.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 20 s");
}

/// A group made through the API in trust-client mode, `owner` its owner; its id.
pub async fn create_group(owner: UserId, name: &str) -> u64 {
    let response = http()
        .post(format!("{}/groups", api_url()))
        .json(&serde_json::json!({"name": name, "user_id": owner}))
        .send()
        .await
        .expect("create a group");
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.expect("json");
    created["group_id"].as_u64().expect("group id")
}
