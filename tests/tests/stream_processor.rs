//! kafka-consumer invoked directly through the Lambda Invoke API with crafted batches, as a
//! redelivering event source would: replays leave history without duplicates or lost updates,
//! and a poison record goes to the dead-letter topic while the good ones are applied; the
//! answer is a partial batch response.

use chat_core::store::DirectoryWriter;
use std::time::{Duration, Instant};

use base64::Engine;
use chat_core::domain::{MessageId, RecordCoordinates, User, UserId};
use e2e_tests::{config, fresh_group, fresh_id, history, http, store};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message as _;
use serde_json::{json, Value};

fn invoke_url() -> String {
    let url = std::env::var("LAMBDA_INVOKE_URL")
        .unwrap_or_else(|_| panic!("LAMBDA_INVOKE_URL is not set: run the tests with `make test`"));
    format!("{url}/2015-03-31/functions/kafka-consumer/invocations")
}

/// A batch on one partition at offsets no real record uses.
fn batch(partition: i32, first_offset: i64, values: &[Value]) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let records: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let raw = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({"topic": "chat-events", "partition": partition, "offset": first_offset + i as i64,
                   "timestamp": 1_767_225_600_000i64, "timestampType": "CREATE_TIME",
                   "value": b64(&raw), "headers": []})
        })
        .collect();
    json!({"eventSource": "aws:kafka", "bootstrapServers": "local",
           "records": {format!("chat-events-{partition}"): records}})
}

async fn invoke(event: &Value) -> Value {
    let reply = http()
        .post(invoke_url())
        .json(event)
        .send()
        .await
        .expect("invoke");
    assert!(
        reply.status().is_success(),
        "kafka-consumer failed: {}",
        reply.text().await.unwrap_or_default()
    );
    reply.json().await.expect("report")
}

async fn texts(user: &User) -> Vec<String> {
    history(user.group_id)
        .await
        .iter()
        .map(|m| m.message.as_str().to_owned())
        .collect()
}

async fn fresh_user() -> User {
    let store = store().await;
    let user = User {
        user_id: UserId::new(i128::from(fresh_id())).expect("id"),
        name: "Replayer".into(),
        group_id: fresh_group(&store).await,
        can_edit: true,
        can_delete: true,
    };
    store.put_user(&user).await.expect("put");
    e2e_tests::join_first_group(&store, &user).await;
    user
}

#[tokio::test]
async fn the_same_batch_applied_twice_leaves_one_copy_of_everything() {
    let user = fresh_user().await;
    let (u, g) = (user.user_id.get(), user.group_id.get());
    let offset = (fresh_id() % (1 << 30)) as i64;
    let id = |o: i64| {
        MessageId::from_coordinates(RecordCoordinates {
            partition: 3,
            offset: o,
        })
        .expect("id")
        .get()
    };
    let event = batch(
        3,
        offset,
        &[
            json!({"type": "message_sent", "user_id": u, "group_id": g, "message": "first", "sent_at": "2026-01-01T00:00:00Z"}),
            json!({"type": "message_sent", "user_id": u, "group_id": g, "message": "second", "sent_at": "2026-01-01T00:00:01Z"}),
            json!({"type": "message_edited", "message_id": id(offset), "user_id": u, "group_id": g, "new_text": "first, edited", "edited_at": "2026-01-01T00:00:02Z"}),
            json!({"type": "message_sent", "user_id": u, "group_id": g, "message": "third", "sent_at": "2026-01-01T00:00:03Z"}),
            json!({"type": "message_deleted", "message_id": id(offset + 1), "user_id": u, "group_id": g, "deleted_at": "2026-01-01T00:00:04Z"}),
        ],
    );
    let first = invoke(&event).await;
    assert_eq!(
        first,
        json!({"batchItemFailures": []}),
        "every record applied"
    );
    let after_first = texts(&user).await;
    assert_eq!(after_first, ["first, edited", "third"]);
    // A retry of the whole batch (as after a failure), and then of a part of it.
    invoke(&event).await;
    let part = batch(
        3,
        offset,
        &[
            json!({"type": "message_sent", "user_id": u, "group_id": g, "message": "first", "sent_at": "2026-01-01T00:00:00Z"}),
        ],
    );
    invoke(&part).await;
    assert_eq!(texts(&user).await, after_first);
}

#[tokio::test]
async fn a_poison_record_is_dead_lettered_while_the_good_ones_are_applied() {
    let user = fresh_user().await;
    let (u, g) = (user.user_id.get(), user.group_id.get());
    let offset = (fresh_id() % (1 << 30)) as i64;
    let marker = format!("poison-{}", fresh_id());
    let response = invoke(&batch(2, offset, &[
        json!({"user_id": u, "message": "good one"}),
        Value::String(format!("{{{marker}")),
        json!({"type": "message_sent", "user_id": u, "group_id": g, "message": "good two", "sent_at": "2026-01-01T00:00:00Z"}),
    ]))
    .await;
    assert_eq!(
        response,
        json!({"batchItemFailures": []}),
        "a poison record is no failure"
    );
    assert_eq!(texts(&user).await, ["good one", "good two"]);

    let config = config();
    let consumer: StreamConsumer<chat_kafka::KafkaContext> =
        chat_kafka::consumer_config(&config.kafka, &format!("dlq-reader-{}", fresh_id()))
            .expect("kafka settings")
            .create()
            .expect("consumer");
    consumer
        .subscribe(&[&config.kafka.dead_letter_topic])
        .expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let record = tokio::time::timeout(left, consumer.recv())
            .await
            .expect("the poison record reaches the dead-letter topic")
            .expect("record");
        let letter: Value =
            serde_json::from_slice(record.payload().unwrap_or_default()).expect("JSON letter");
        let value = base64::engine::general_purpose::STANDARD
            .decode(letter["value"].as_str().unwrap_or_default())
            .unwrap_or_default();
        if String::from_utf8_lossy(&value).contains(&marker) {
            assert_eq!(letter["offset"].as_i64(), Some(offset + 1));
            assert!(letter["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not JSON")));
            break;
        }
    }
}
