//! What the event source's tests share: a stub of the Lambda Invoke API, a producer, settings
//! and readers of what was delivered and committed.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::kafka::KafkaEvent;
use base64::Engine;
use chat_core::config::Config;
use chat_kafka::{self as kafka, KafkaContext};
use local_kafka_esm::Settings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;
use serde_json::Value;

/// How a stub answers an event: an HTTP status and a body.
pub type Answer = Box<dyn Fn(&Value) -> (u16, Value) + Send + Sync>;

/// A stand-in for the Lambda Invoke API: records every event and fails the first `failures`,
/// or answers as `answer` says.
#[derive(Default)]
pub struct Stub {
    pub events: Mutex<Vec<(Value, bool)>>,
    /// Per invocation: its partitions (`"topic-partition"`), when it came and when it was answered.
    pub spans: Mutex<Vec<(Vec<String>, Instant, Instant)>>,
    /// Invocations that came, answered or not.
    pub arrived: std::sync::atomic::AtomicUsize,
    failures_left: Mutex<u32>,
    answer: Option<Answer>,
    /// How long each invocation takes to answer.
    hold: Duration,
}

pub async fn start_stub(failures: u32) -> (Arc<Stub>, String) {
    serve_stub(Stub {
        failures_left: Mutex::new(failures),
        ..Stub::default()
    })
    .await
}

/// A stub that succeeds, each invocation taking `hold`.
pub async fn start_slow_stub(hold: Duration) -> (Arc<Stub>, String) {
    serve_stub(Stub {
        hold,
        ..Stub::default()
    })
    .await
}

/// A stub that answers each event as `answer` says (a 2xx counts as a success).
pub async fn start_answering_stub(answer: Answer) -> (Arc<Stub>, String) {
    serve_stub(Stub {
        answer: Some(answer),
        ..Stub::default()
    })
    .await
}

async fn serve_stub(stub: Stub) -> (Arc<Stub>, String) {
    let stub = Arc::new(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .fallback(invoked)
        .with_state(stub.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (stub, url)
}

/// The stub's Invoke API: records the event, and fails while failures are left.
async fn invoked(
    axum::extract::State(stub): axum::extract::State<Arc<Stub>>,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, String) {
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let came = Instant::now();
    stub.arrived
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(stub.hold).await;
    let partitions = event["records"]
        .as_object()
        .map(|records| records.keys().cloned().collect())
        .unwrap_or_default();
    stub.spans
        .lock()
        .expect("lock")
        .push((partitions, came, Instant::now()));
    if let Some(answer) = &stub.answer {
        let (status, body) = answer(&event);
        stub.events
            .lock()
            .expect("lock")
            .push((event, (200..300).contains(&status)));
        let status = axum::http::StatusCode::from_u16(status).expect("status");
        return (status, body.to_string());
    }
    let fail = {
        let mut left = stub.failures_left.lock().expect("lock");
        let fail = *left > 0;
        *left = left.saturating_sub(1);
        fail
    };
    stub.events.lock().expect("lock").push((event, !fail));
    if fail {
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "{}".into())
    } else {
        (axum::http::StatusCode::OK, "{}".into())
    }
}

pub async fn produce(config: &Config, topic: &str, partition: i32, value: &str) {
    let producer: FutureProducer<KafkaContext> = kafka::client_config(&config.kafka)
        .expect("kafka settings")
        .create()
        .expect("producer");
    let headers = OwnedHeaders::new().insert(Header {
        key: "trace",
        value: Some(&[0xffu8, 0x01][..]),
    });
    producer
        .send(
            FutureRecord::to(topic)
                .partition(partition)
                .key("k")
                .payload(value)
                .headers(headers),
            Duration::from_secs(5),
        )
        .await
        .expect("produced");
}

pub fn settings(config: &Config, topic: &str, group: &str, url: &str) -> Settings {
    Settings {
        kafka: config.kafka.clone(),
        topic: topic.to_owned(),
        group_id: group.to_owned(),
        function: "kafka-consumer".into(),
        invoke_url: url.to_owned(),
        batch_size: 100,
        batching_window: Duration::from_millis(300),
        event_source: "aws:kafka".into(),
        max_backoff: Duration::from_millis(50),
        function_timeout: Duration::from_secs(60),
        maximum_retry_attempts: -1,
        maximum_record_age: None,
        bisect_batch_on_function_error: false,
        report_batch_item_failures: true,
        on_failure_topic: None,
        ready_file: None,
    }
}

pub async fn wait_for(stub: &Stub, what: &str, done: impl Fn(&[(Value, bool)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&stub.events.lock().expect("lock")) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn values(event: &Value) -> Vec<String> {
    let parsed: KafkaEvent = serde_json::from_value(event.clone()).expect("a KafkaEvent");
    let mut records: Vec<_> = parsed.records.values().flatten().cloned().collect();
    records.sort_by_key(|r| (r.partition, r.offset));
    records
        .iter()
        .map(|r| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(r.value.as_deref().unwrap_or_default())
                .expect("base64");
            String::from_utf8(bytes).expect("utf-8")
        })
        .collect()
}

pub fn committed(config: &Config, topic: &str, group: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer<KafkaContext> = kafka::consumer_config(&config.kafka, group)
        .expect("kafka settings")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let offsets = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| {
            offsets
                .find_partition(topic, p)
                .map_or(-1, |e| e.offset().to_raw().unwrap_or(-1))
        })
        .collect()
}

/// Every record value of partition 0 of `topic`, from the start to its current end.
pub fn read_topic(config: &Config, topic: &str) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer<KafkaContext> = kafka::consumer_config(&config.kafka, "esm-reader")
        .expect("kafka settings")
        .create()
        .expect("consumer");
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(5))
        .expect("watermarks");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, rdkafka::Offset::Offset(low))
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (values.len() as i64) < high - low && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            values.push(rdkafka::Message::payload(&m).unwrap_or_default().to_vec());
        }
    }
    values
}
