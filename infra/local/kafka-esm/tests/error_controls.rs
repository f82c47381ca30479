//! AWS's error handling controls in the local event source, against the real broker with a stub
//! in place of the function: partial batch responses, bisection, bounded retries with the
//! on-failure topic, and commits that never skip a record unrecorded.

mod common;

use std::time::{Duration, Instant};

use chat_kafka as kafka;
use chat_testkit::services::{kafka_config as config, unique};
use common::*;
use serde_json::{json, Value};

fn item(topic: &str, partition: i32, offset: i64) -> Value {
    json!({"itemIdentifier": {"partition": format!("{topic}-{partition}"), "offset": offset}})
}

/// Offsets of the records of an event, per partition.
fn offsets(event: &Value) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (key, records) in event["records"].as_object().into_iter().flatten() {
        for r in records.as_array().into_iter().flatten() {
            out.push((key.clone(), r["offset"].as_i64().unwrap_or(-1)));
        }
    }
    out.sort();
    out
}

async fn wait_committed(
    config: &chat_core::config::Config,
    topic: &str,
    group: &str,
    want: Vec<i64>,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed(config, topic, group, want.len() as i32) != want {
        assert!(
            Instant::now() < deadline,
            "offsets {want:?} were never committed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_partial_response_retries_only_the_failed_record_and_what_follows_in_its_partition() {
    let config = config();
    let topic = unique("esm-partial");
    kafka::ensure_topics(&config.kafka, &[(&topic, 2)])
        .await
        .expect("topic");
    for (p, v) in [(0, "a0"), (0, "a1"), (0, "a2"), (1, "b0"), (1, "b1")] {
        produce(&config, &topic, p, v).await;
    }
    let failing = topic.clone();
    let answered = std::sync::atomic::AtomicBool::new(false);
    // The first invocation that holds offset 1 of partition 0 reports it failed.
    let (stub, url) = start_answering_stub(Box::new(move |event| {
        let has = offsets(event).contains(&(format!("{failing}-0"), 1));
        if has && !answered.swap(true, std::sync::atomic::Ordering::SeqCst) {
            (200, json!({"batchItemFailures": [item(&failing, 0, 1)]}))
        } else {
            (200, json!({"batchItemFailures": []}))
        }
    }))
    .await;
    let mut settings = settings(&config, &topic, &unique("esm"), &url);
    settings.batching_window = Duration::from_secs(1);
    let group = settings.group_id.clone();
    let task = tokio::spawn(local_kafka_esm::run(settings));
    wait_committed(&config, &topic, &group, vec![3, 2]).await;
    task.abort();
    let events = stub.events.lock().expect("lock").clone();
    let delivered: Vec<(String, i64)> = events.iter().flat_map(|(e, _)| offsets(e)).collect();
    let p0 = format!("{topic}-0");
    let times = |offset: i64| {
        delivered
            .iter()
            .filter(|d| **d == (p0.clone(), offset))
            .count()
    };
    assert_eq!((times(0), times(1), times(2)), (1, 2, 2), "{delivered:?}");
    let p1 = format!("{topic}-1");
    assert_eq!(
        delivered.iter().filter(|(p, _)| *p == p1).count(),
        2,
        "partition 1 once"
    );
}

#[tokio::test]
async fn a_batch_failing_past_its_retries_goes_to_the_on_failure_topic_and_is_committed() {
    let config = config();
    let topic = unique("esm-exhaust");
    let on_failure = unique("esm-failed");
    kafka::ensure_topics(&config.kafka, &[(&topic, 1), (&on_failure, 1)])
        .await
        .expect("topics");
    for v in ["x", "y"] {
        produce(&config, &topic, 0, v).await;
    }
    let (stub, url) =
        start_answering_stub(Box::new(|_| (500, json!({"errorMessage": "boom"})))).await;
    let mut settings = settings(&config, &topic, &unique("esm"), &url);
    settings.batching_window = Duration::from_secs(1);
    settings.maximum_retry_attempts = 2;
    settings.on_failure_topic = Some(on_failure.clone());
    let group = settings.group_id.clone();
    let task = tokio::spawn(local_kafka_esm::run(settings));
    wait_committed(&config, &topic, &group, vec![2]).await;
    task.abort();
    let tries = stub.events.lock().expect("lock").len();
    assert_eq!(tries, 3, "one try and two retries, no more");
    let letters = e2e_letters(&config, &on_failure, 2).await;
    assert_eq!(letters.len(), 2);
    for letter in &letters {
        assert_eq!(letter["topic"], topic.as_str());
        assert_eq!(letter["retries"], 2);
        assert!(letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("MaximumRetryAttempts")));
    }
}

#[tokio::test]
async fn bisection_isolates_the_record_the_function_cannot_take() {
    let config = config();
    let topic = unique("esm-bisect");
    let on_failure = unique("esm-failed");
    kafka::ensure_topics(&config.kafka, &[(&topic, 1), (&on_failure, 1)])
        .await
        .expect("topics");
    for v in ["ok-0", "ok-1", "ok-2", "poison", "ok-4", "ok-5"] {
        produce(&config, &topic, 0, v).await;
    }
    // The function fails any batch that holds the poison record (a crash, say).
    let (stub, url) = start_answering_stub(Box::new(|event| {
        if values(event).iter().any(|v| v == "poison") {
            (500, json!({"errorMessage": "crashed"}))
        } else {
            (200, json!({}))
        }
    }))
    .await;
    let mut settings = settings(&config, &topic, &unique("esm"), &url);
    settings.batching_window = Duration::from_secs(1);
    settings.maximum_retry_attempts = 3;
    settings.bisect_batch_on_function_error = true;
    settings.on_failure_topic = Some(on_failure.clone());
    let group = settings.group_id.clone();
    let task = tokio::spawn(local_kafka_esm::run(settings));
    wait_committed(&config, &topic, &group, vec![6]).await;
    task.abort();
    let events = stub.events.lock().expect("lock").clone();
    let succeeded: Vec<String> = events
        .iter()
        .filter(|(_, ok)| *ok)
        .flat_map(|(e, _)| values(e))
        .collect();
    for good in ["ok-0", "ok-1", "ok-2", "ok-4", "ok-5"] {
        assert!(
            succeeded.iter().any(|v| v == good),
            "{good} never succeeded: {succeeded:?}"
        );
    }
    let letters = e2e_letters(&config, &on_failure, 1).await;
    assert_eq!(
        letters.len(),
        1,
        "only the poison record is set aside: {letters:?}"
    );
    assert_eq!(letters[0]["offset"], 3);
}

/// The letters of the on-failure topic, waiting until `count` are there.
async fn e2e_letters(config: &chat_core::config::Config, topic: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let letters: Vec<Value> = read_topic(config, topic)
            .iter()
            .filter_map(|v| serde_json::from_slice(v).ok())
            .collect();
        if letters.len() >= count || Instant::now() > deadline {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
