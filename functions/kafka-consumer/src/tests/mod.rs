//! The processor's logic over in-memory fakes. The same paths run against the real broker,
//! DynamoDB Local and the emulators in the end-to-end tests.

use std::sync::Arc;

use base64::Engine;
use chat_core::domain::{Connection, GroupId, MessageId, RecordCoordinates};
use chat_core::push::PushError;
use chat_core::store::{StoreError, StoredMessage};
use chat_testkit::{Fallible, MemoryPublisher, MemoryPusher, MemoryStore};
use chrono::Utc;
use serde_json::{json, Value};

use super::*;
use crate::fan_out::FAN_OUT_BUDGET;

struct Fixture {
    processor: Processor,
    store: Arc<MemoryStore>,
    publisher: Arc<MemoryPublisher>,
    pusher: Arc<MemoryPusher>,
}

fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::seeded());
    let publisher = Arc::new(MemoryPublisher::with_topics(&["chat-events", "dlq"]));
    let pusher = Arc::new(MemoryPusher::new());
    Fixture {
        processor: Processor {
            store: store.clone(),
            publisher: publisher.clone(),
            pusher: Some(pusher.clone()),
            dead_letter_topic: "dlq".into(),
            users: KnownUsers::default(),
            bare_records: true,
        },
        store,
        publisher,
        pusher,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Kafka event as the event source shapes it, from `(partition, offset, value)`.
fn event(records: &[(i32, i64, Value)]) -> Batch {
    let mut grouped = serde_json::Map::new();
    for (partition, offset, value) in records {
        let bytes = match value {
            Value::String(raw) => raw.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        let entry = grouped
            .entry(format!("chat-events-{partition}"))
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(list) = entry {
            list.push(json!({
                "topic": "chat-events", "partition": partition, "offset": offset,
                "timestamp": 1_767_225_600_000i64, "timestampType": "CREATE_TIME",
                "key": b64(b"1"), "value": b64(&bytes), "headers": [],
            }));
        }
    }
    serde_json::from_value(json!({
        "eventSource": "aws:kafka", "bootstrapServers": "127.0.0.1:9092", "records": grouped,
    }))
    .expect("a batch")
}

/// A batch of records given whole, as odd as they come.
fn raw_event(records: Vec<Value>) -> Batch {
    serde_json::from_value(
        json!({"eventSource": "aws:kafka", "records": {"chat-events-0": records}}),
    )
    .expect("a batch")
}

fn sent(user: u64, group: u64, text: &str) -> Value {
    json!({"type": "message_sent", "user_id": user, "group_id": group, "message": text,
           "sent_at": "2026-01-01T00:00:00Z"})
}

fn edited(id: u64, user: u64, group: u64, text: &str) -> Value {
    json!({"type": "message_edited", "message_id": id, "user_id": user, "group_id": group,
           "new_text": text, "edited_at": "2026-01-01T00:01:00Z"})
}

fn deleted(id: u64, user: u64, group: u64) -> Value {
    json!({"type": "message_deleted", "message_id": id, "user_id": user, "group_id": group,
           "deleted_at": "2026-01-01T00:02:00Z"})
}

fn id(partition: i32, offset: i64) -> u64 {
    MessageId::from_coordinates(RecordCoordinates { partition, offset })
        .expect("id")
        .get()
}

/// A connection made a minute ago (past the `$connect` window).
/// A socket of `group`, as ws-connect leaves it: stored, and open at the Management API.
async fn connect(f: &Fixture, connection_id: &str, group: u64) {
    connect_at(
        f,
        connection_id,
        group,
        Utc::now() - chrono::Duration::minutes(1),
    )
    .await;
}

async fn connect_at(
    f: &Fixture,
    connection_id: &str,
    group: u64,
    connected_at: chrono::DateTime<Utc>,
) {
    f.pusher.open(connection_id);
    f.store
        .put_connection(&Connection {
            connection_id: connection_id.into(),
            group_id: GroupId::new(i128::from(group)).expect("id"),
            user_id: None,
            all_groups: false,
            connected_at,
            expires_at: Utc::now() + chrono::Duration::hours(2),
        })
        .await
        .expect("connect");
}

async fn texts(store: &MemoryStore, group: u64) -> Vec<String> {
    store
        .list_messages(
            GroupId::new(i128::from(group)).expect("id"),
            chat_core::store::PageRequest {
                limit: 1000,
                cursor: chat_core::store::Cursor::Latest,
            },
        )
        .await
        .expect("list")
        .messages
        .iter()
        .map(|m| m.message.as_str().to_owned())
        .collect()
}

#[tokio::test]
async fn sends_are_stored_and_pushed_in_order_to_their_group_only() {
    let f = fixture();
    connect(&f, "g1-a", 1).await;
    connect(&f, "g1-b", 1).await;
    connect(&f, "g2-a", 2).await;
    let report = f
        .processor
        .process(&event(&[
            (0, 0, sent(1, 1, "one")),
            (0, 1, sent(2, 1, "two")),
            (1, 0, sent(3, 2, "three")),
        ]))
        .await
        .expect("processed")
        .report;
    assert_eq!((report.applied, report.pushed), (3, 5));
    assert_eq!(texts(&f.store, 1).await, ["one", "two"]);
    for connection in ["g1-a", "g1-b"] {
        let frames = f.pusher.frames(connection);
        let got: Vec<(&str, u64)> = frames
            .iter()
            .map(|fr| {
                (
                    fr["message"].as_str().unwrap_or_default(),
                    fr["id"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(got, [("one", id(0, 0)), ("two", id(0, 1))]);
        assert_eq!(frames[0]["event"], "created");
        assert_eq!(frames[0]["name"], "Alice");
    }
    assert_eq!(f.pusher.frames("g2-a").len(), 1);
}

#[tokio::test]
async fn a_batch_reports_its_cloudwatch_figures_with_the_lag_of_its_oldest_record() {
    let f = fixture();
    connect(&f, "g1-a", 1).await;
    let mut batch = event(&[(0, 0, sent(1, 1, "one")), (1, 0, sent(3, 2, "two"))]);
    // The second partition's record is the older one.
    if let Some(entry) = batch
        .records
        .get_mut("chat-events-1")
        .and_then(|list| list.first_mut())
    {
        entry["timestamp"] = json!(1_767_225_599_000i64);
    }
    let outcome = f.processor.process(&batch).await.expect("processed");
    let report = outcome.report;
    assert_eq!(report.oldest_record_ms, Some(1_767_225_599_000));
    let figures = report.figures(1_767_225_600_500);
    assert_eq!(figures.applied, 2);
    assert_eq!(figures.pushes_sent, 1);
    assert_eq!((figures.pushes_gone, figures.pushes_failed), (0, 0));
    assert_eq!(figures.lag, Some(std::time::Duration::from_millis(1_500)));
    // A clock behind the broker's is no negative lag.
    assert_eq!(report.figures(0).lag, Some(std::time::Duration::ZERO));
}

#[tokio::test]
async fn a_traced_records_frame_carries_its_stamps_in_order_and_others_none() {
    let f = fixture();
    connect(&f, "g1-a", 1).await;
    let mut batch = event(&[(0, 0, sent(1, 1, "traced")), (0, 1, sent(2, 1, "plain"))]);
    let header: Vec<i64> = b"received=10;fetched=20;invoking=30"
        .iter()
        .map(|b| i64::from(*b))
        .collect();
    if let Some(entry) = batch
        .records
        .get_mut("chat-events-0")
        .and_then(|list| list.first_mut())
    {
        entry["headers"] = json!([{"other": [1, 2]}, {"chat-trace": header}]);
    }
    f.processor.process(&batch).await.expect("processed");
    let frames = f.pusher.frames("g1-a");
    assert_eq!(frames.len(), 2);
    let stamp = |name: &str| frames[0]["trace"][name].as_i64().unwrap_or(-1);
    let order = [
        "received", "fetched", "invoking", "started", "stored", "pushing",
    ];
    let stamps: Vec<i64> = order.iter().map(|name| stamp(name)).collect();
    assert_eq!(&stamps[..3], [10, 20, 30]);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(frames[1].get("trace").is_none(), "{}", frames[1]);
    assert_eq!(frames[0]["message"], "traced");
}

#[tokio::test]
async fn a_bare_record_of_the_original_app_is_a_send_to_the_users_group() {
    let f = fixture();
    f.processor
        .process(&event(&[(
            2,
            7,
            json!({"user_id": 4, "message": "Hello, Kafka!"}),
        )]))
        .await
        .expect("processed");
    match f
        .store
        .get_message(MessageId::new(i128::from(id(2, 7))).expect("id"))
        .await
    {
        Ok(Some(StoredMessage::Live(m))) => {
            assert_eq!(
                (m.group_id.get(), m.name.as_str(), m.message.as_str()),
                (2, "David", "Hello, Kafka!")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_the_good_ones_applied() {
    let f = fixture();
    let report = f
        .processor
        .process(&event(&[
            (0, 0, sent(1, 1, "before")),
            (0, 1, Value::String("not json at all".into())),
            (0, 2, json!({"user_id": 99, "message": "unknown user"})),
            (0, 3, sent(1, 2, "wrong group")),
            (0, 4, json!({"type": "message_exploded"})),
            (0, 5, sent(2, 1, "after")),
        ]))
        .await
        .expect("processed")
        .report;
    assert_eq!((report.applied, report.dead_lettered), (2, 4));
    assert_eq!(texts(&f.store, 1).await, ["before", "after"]);
    let letters = f.publisher.records();
    assert_eq!(letters.len(), 4);
    assert!(letters.iter().all(|l| l.topic == "dlq"));
    let first: Value = serde_json::from_slice(&letters[0].payload).expect("json");
    assert_eq!(
        (first["offset"].as_i64(), first["partition"].as_i64()),
        (Some(1), Some(0))
    );
    assert!(first["reason"]
        .as_str()
        .is_some_and(|r| r.contains("not JSON")));
    assert_eq!(first["value"], b64(b"not json at all"));
}

#[tokio::test]
async fn bare_records_are_applied_unless_turned_off_then_dead_lettered() {
    let bare = json!({"user_id": 1, "message": "in the original shape"});
    let f = fixture();
    let report = f
        .processor
        .process(&event(&[(0, 0, bare.clone())]))
        .await
        .expect("processed")
        .report;
    assert_eq!((report.applied, report.dead_lettered), (1, 0));
    assert_eq!(texts(&f.store, 1).await, ["in the original shape"]);
    let mut f = fixture();
    f.processor.bare_records = false;
    let report = f
        .processor
        .process(&event(&[(0, 0, bare), (0, 1, sent(1, 1, "typed"))]))
        .await
        .expect("processed")
        .report;
    assert_eq!((report.applied, report.dead_lettered), (1, 1));
    assert_eq!(texts(&f.store, 1).await, ["typed"]);
    let letter: Value = serde_json::from_slice(&f.publisher.records()[0].payload).expect("json");
    assert!(letter["reason"]
        .as_str()
        .is_some_and(|r| r.contains("COMPAT_OFF=bare-records")));
}

#[tokio::test]
async fn changes_the_log_does_not_allow_are_dropped_without_a_dead_letter() {
    let f = fixture();
    let send = id(0, 0);
    let report = f
        .processor
        .process(&event(&[
            (0, 0, sent(1, 1, "alice's")),
            (0, 1, edited(send, 2, 1, "bob was here")),
            (0, 2, deleted(send, 1, 1)),
            (0, 3, edited(424242, 1, 1, "no such message")),
        ]))
        .await
        .expect("processed")
        .report;
    assert_eq!(
        (report.applied, report.dropped, report.dead_lettered),
        (1, 3, 0)
    );
    assert_eq!(texts(&f.store, 1).await, ["alice's"]);
    assert!(f.publisher.records().is_empty());
}

#[tokio::test]
async fn replaying_a_batch_changes_nothing_and_never_reverts_an_edit() {
    let f = fixture();
    connect(&f, "c", 1).await;
    let m = id(0, 0);
    let batch = event(&[
        (0, 0, sent(2, 1, "v1")),
        (0, 1, edited(m, 2, 1, "v2")),
        (0, 2, edited(m, 2, 1, "v3")),
        (0, 3, sent(2, 1, "doomed")),
        (0, 4, deleted(id(0, 3), 2, 1)),
    ]);
    f.processor.process(&batch).await.expect("first delivery");
    f.processor.process(&batch).await.expect("redelivery");
    // A retry of only the older edit, after the newer one.
    f.processor
        .process(&event(&[(0, 1, edited(m, 2, 1, "v2"))]))
        .await
        .expect("old edit again");
    assert_eq!(texts(&f.store, 1).await, ["v3"]);
    let frames = f.pusher.frames("c");
    let shown: Vec<&str> = frames
        .iter()
        .filter(|fr| fr["id"] == m)
        .map(|fr| fr["message"].as_str().unwrap_or_default())
        .collect();
    // The first delivery announces v1, v2 and v3 in log order; from the first v3 on, no
    // frame goes back to an older text, whatever is replayed.
    assert_eq!(shown[..3], ["v1", "v2", "v3"], "{shown:?}");
    assert!(shown[2..].iter().all(|text| *text == "v3"), "{shown:?}");
    assert!(frames
        .iter()
        .all(|fr| fr["id"] != id(0, 3) || fr["event"] != "created" || fr["message"] == "doomed"));
    assert!(frames
        .iter()
        .any(|fr| fr["event"] == "deleted" && fr["id"] == id(0, 3)));
}

#[tokio::test]
async fn a_deleted_message_is_not_resurrected_by_a_replayed_send() {
    let f = fixture();
    connect(&f, "c", 1).await;
    f.processor
        .process(&event(&[
            (0, 0, sent(2, 1, "gone soon")),
            (0, 1, deleted(id(0, 0), 2, 1)),
        ]))
        .await
        .expect("processed");
    let before = f.pusher.frames("c").len();
    f.processor
        .process(&event(&[(0, 0, sent(2, 1, "gone soon"))]))
        .await
        .expect("replay");
    assert!(texts(&f.store, 1).await.is_empty());
    assert_eq!(
        f.pusher.frames("c").len(),
        before,
        "no created frame for a deleted message"
    );
}

#[tokio::test]
async fn a_closed_connection_is_forgotten_after_a_410() {
    let f = fixture();
    connect(&f, "open", 1).await;
    connect(&f, "closed", 1).await;
    f.pusher.close("closed");
    let report = f
        .processor
        .process(&event(&[(0, 0, sent(1, 1, "hi"))]))
        .await
        .expect("processed")
        .report;
    assert_eq!((report.pushed, report.gone), (1, 1));
    assert_eq!(f.store.get_connection("closed").await, Ok(None));
    assert!(f.store.get_connection("open").await.expect("get").is_some());
}

mod isolation;
mod membership;

#[tokio::test]
async fn a_user_read_by_one_batch_is_believed_by_the_next_for_a_while() {
    use chat_core::store::DirectoryWriter;
    let f = fixture();
    f.processor
        .process(&event(&[(0, 1, sent(1, 1, "one"))]))
        .await
        .expect("first batch");
    // Renamed in the directory: the next batch, within KNOWN_USER_TTL, still says Alice.
    let mut alice = chat_core::compat::seed_users()[0].clone();
    alice.name = "Alicia".into();
    f.store.put_user(&alice).await.expect("rename");
    f.processor
        .process(&event(&[(0, 2, sent(1, 1, "two"))]))
        .await
        .expect("second batch");
    let second = f
        .store
        .get_message(MessageId::new(i128::from(id(0, 2))).expect("id"))
        .await
        .expect("get");
    match second {
        Some(StoredMessage::Live(m)) => assert_eq!(m.name, "Alice"),
        other => panic!("unexpected {other:?}"),
    }
    // A fresh process reads the directory again.
    let g = fixture();
    g.store.put_user(&alice).await.expect("rename");
    g.processor
        .process(&event(&[(0, 3, sent(1, 1, "three"))]))
        .await
        .expect("batch");
    match g
        .store
        .get_message(MessageId::new(i128::from(id(0, 3))).expect("id"))
        .await
        .expect("get")
    {
        Some(StoredMessage::Live(m)) => assert_eq!(m.name, "Alicia"),
        other => panic!("unexpected {other:?}"),
    }
}
