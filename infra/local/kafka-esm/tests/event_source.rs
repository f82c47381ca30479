//! The event-source emulator against the real broker, invoking a stub in place of Lambda:
//! AWS's event shape, retry of a failed batch without skipping, and commit only after success.

mod common;

use std::time::{Duration, Instant};

use aws_lambda_events::kafka::KafkaEvent;
use chat_kafka as kafka;
use chat_testkit::services::{kafka_config as config, unique};
use common::*;

#[tokio::test]
async fn a_batch_has_awss_shape() {
    let config = config();
    let topic = unique("esm-shape");
    kafka::ensure_topics(&config.kafka, &[(&topic, 2)])
        .await
        .expect("topic");
    for (p, v) in [(0, "a"), (1, "b"), (0, "c")] {
        produce(&config, &topic, p, v).await;
    }
    let (stub, url) = start_stub(0).await;
    let group = unique("esm");
    let task = tokio::spawn(local_kafka_esm::run(settings(
        &config, &topic, &group, &url,
    )));
    wait_for(&stub, "three records", |events| {
        events.iter().map(|(e, _)| values(e).len()).sum::<usize>() == 3
    })
    .await;
    task.abort();
    let events = stub.events.lock().expect("lock").clone();
    let key = format!("{topic}-0");
    let event = &events
        .iter()
        .find(|(e, _)| e["records"].get(&key).is_some())
        .unwrap_or_else(|| panic!("no event of {key}: {events:?}"))
        .0;
    assert_eq!(event["eventSource"], "aws:kafka");
    assert_eq!(
        event["bootstrapServers"],
        config.kafka.bootstrap_servers.as_str()
    );
    let parsed: KafkaEvent = serde_json::from_value(event.clone()).expect("a KafkaEvent");
    let records = parsed
        .records
        .get(&key)
        .unwrap_or_else(|| panic!("no {key} in {event}"));
    let record = &records[0];
    assert_eq!((record.partition, record.offset), (0, 0));
    assert_eq!(record.key.as_deref(), Some("aw=="));
    assert_eq!(record.timestamp_type.as_deref(), Some("CREATE_TIME"));
    assert_eq!(record.headers[0]["trace"], vec![-1i8, 1]);
    let raw = &event["records"][&key][0];
    assert!(
        raw["headers"].is_array() && raw["timestamp"].is_i64(),
        "{raw}"
    );
    let all: Vec<String> = events.iter().flat_map(|(e, _)| values(e)).collect();
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn partitions_are_delivered_concurrently_each_one_batch_at_a_time_in_order() {
    let config = config();
    let topic = unique("esm-concurrent");
    kafka::ensure_topics(&config.kafka, &[(&topic, 2)])
        .await
        .expect("topic");
    for (p, v) in [(0, "a0"), (1, "b0"), (0, "a1"), (1, "b1")] {
        produce(&config, &topic, p, v).await;
    }
    let (stub, url) = start_slow_stub(Duration::from_millis(700)).await;
    let mut settings = settings(&config, &topic, &unique("esm"), &url);
    settings.batching_window = Duration::from_millis(100);
    let group = settings.group_id.clone();
    let task = tokio::spawn(local_kafka_esm::run(settings));
    // While the first batches are held, more arrive for partition 0: they wait for its batch.
    // Both first batches must be in flight first: a partition fetched late (once, 0.5 s after
    // the other) took the later records into its first batch, and the test saw one batch.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stub.arrived.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "the two partitions' first batches never both came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for v in ["a2", "a3"] {
        produce(&config, &topic, 0, v).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed(&config, &topic, &group, 2) != vec![4, 2] {
        assert!(
            Instant::now() < deadline,
            "offsets 4 and 2 were never committed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    let spans = stub.spans.lock().expect("lock").clone();
    let of = |p: i32| -> Vec<(Instant, Instant)> {
        let key = format!("{topic}-{p}");
        spans
            .iter()
            .filter(|(keys, _, _)| keys == &vec![key.clone()])
            .map(|(_, came, done)| (*came, *done))
            .collect()
    };
    let (p0, p1) = (of(0), of(1));
    assert_eq!(
        p0.len() + p1.len(),
        spans.len(),
        "one partition per event: {spans:?}"
    );
    assert!(p0.len() >= 2 && !p1.is_empty(), "{spans:?}");
    let overlap = |a: &(Instant, Instant), b: &(Instant, Instant)| a.0 < b.1 && b.0 < a.1;
    assert!(
        p0.iter().any(|a| p1.iter().any(|b| overlap(a, b))),
        "the partitions were never in flight together: {spans:?}"
    );
    assert!(
        p0.windows(2).all(|w| w[0].1 <= w[1].0),
        "two invocations of partition 0 overlapped: {p0:?}"
    );
    let events = stub.events.lock().expect("lock").clone();
    let delivered: Vec<String> = events
        .iter()
        .flat_map(|(e, _)| values(e))
        .filter(|v| v.starts_with('a'))
        .collect();
    assert_eq!(delivered, ["a0", "a1", "a2", "a3"]);
}

#[tokio::test]
async fn a_failed_batch_is_retried_whole_and_offsets_commit_only_after_success() {
    let config = config();
    let topic = unique("esm-retry");
    kafka::ensure_topics(&config.kafka, &[(&topic, 1)])
        .await
        .expect("topic");
    for v in ["one", "two", "three"] {
        produce(&config, &topic, 0, v).await;
    }
    let (stub, url) = start_stub(3).await;
    let group = unique("esm");
    let task = tokio::spawn(local_kafka_esm::run(settings(
        &config, &topic, &group, &url,
    )));
    wait_for(&stub, "three failures", |events| events.len() >= 3).await;
    assert_eq!(
        committed(&config, &topic, &group, 1),
        vec![-1001],
        "nothing committed while failing"
    );
    wait_for(&stub, "a success", |events| {
        events.iter().any(|(_, ok)| *ok)
    })
    .await;
    let events = stub.events.lock().expect("lock").clone();
    // Every try carried the same records, from the first: nothing skipped, nothing newer.
    for (event, _) in &events[..4] {
        assert_eq!(values(event), ["one", "two", "three"]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while committed(&config, &topic, &group, 1) != vec![3] {
        assert!(Instant::now() < deadline, "offset 3 was never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();

    // A restart with the same group resumes after the committed offset.
    produce(&config, &topic, 0, "four").await;
    let (stub, url) = start_stub(0).await;
    let task = tokio::spawn(local_kafka_esm::run(settings(
        &config, &topic, &group, &url,
    )));
    wait_for(&stub, "the new record", |events| !events.is_empty()).await;
    task.abort();
    assert_eq!(values(&stub.events.lock().expect("lock")[0].0), ["four"]);
}

#[tokio::test]
async fn mappings_of_one_group_share_the_partitions_and_take_over_from_one_that_stops() {
    let config = config();
    let topic = unique("esm-group");
    kafka::ensure_topics(&config.kafka, &[(&topic, 2)])
        .await
        .expect("topic");
    let group = unique("esm");
    let (first, first_url) = start_stub(0).await;
    let (second, second_url) = start_stub(0).await;
    let first_task = tokio::spawn(local_kafka_esm::run(settings(
        &config, &topic, &group, &first_url,
    )));
    let second_task = tokio::spawn(local_kafka_esm::run(settings(
        &config,
        &topic,
        &group,
        &second_url,
    )));
    // The partitions of the batches a stub got from its `from`-th on.
    let partitions_since = |stub: &Stub, from: usize| -> std::collections::BTreeSet<String> {
        stub.events
            .lock()
            .expect("lock")
            .iter()
            .skip(from)
            .flat_map(|(e, _)| {
                e["records"]
                    .as_object()
                    .map(|r| r.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect()
    };
    let received = |stub: &Stub| stub.events.lock().expect("lock").len();
    // Records on both partitions until each mapping has been given one by the group. A mapping
    // that joined first held both partitions for a while: once both have been fed, only the
    // batches after the last time one of them still got both partitions count.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = Vec::new();
    let mut k = 0;
    let mut since = (0, 0);
    loop {
        let (a, b) = (
            partitions_since(&first, since.0),
            partitions_since(&second, since.1),
        );
        if a.len() == 1 && b.len() == 1 {
            break;
        }
        if !a.is_empty() && !b.is_empty() {
            since = (received(&first), received(&second));
        }
        assert!(
            Instant::now() < deadline,
            "the group never split the partitions: {a:?} and {b:?}"
        );
        for p in 0..2 {
            let value = format!("before-{p}-{k}");
            produce(&config, &topic, p, &value).await;
            sent.push(value);
        }
        k += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_ne!(
        partitions_since(&first, since.0),
        partitions_since(&second, since.1)
    );

    // The first stops (leaving the group); the second takes both partitions over.
    first_task.abort();
    let _ = first_task.await;
    for p in 0..2 {
        let value = format!("after-{p}");
        produce(&config, &topic, p, &value).await;
        sent.push(value);
    }
    wait_for(
        &second,
        "both records sent after the first stopped",
        |events| {
            let got: Vec<String> = events.iter().flat_map(|(e, _)| values(e)).collect();
            got.iter().any(|v| v == "after-0") && got.iter().any(|v| v == "after-1")
        },
    )
    .await;
    second_task.abort();

    // Nothing was lost; each partition's records arrived in order at each mapping.
    let mut delivered = std::collections::BTreeSet::new();
    for stub in [&first, &second] {
        let events = stub.events.lock().expect("lock").clone();
        for p in 0..2 {
            let of_p: Vec<u64> = events
                .iter()
                .flat_map(|(e, _)| values(e))
                .filter_map(|v| {
                    let rest = v.strip_prefix(&format!("before-{p}-"))?;
                    rest.parse().ok()
                })
                .collect();
            assert!(
                of_p.windows(2).all(|w| w[0] <= w[1]),
                "partition {p} out of order: {of_p:?}"
            );
        }
        delivered.extend(events.iter().flat_map(|(e, _)| values(e)));
    }
    for value in &sent {
        assert!(delivered.contains(value), "{value} was never delivered");
    }
}

#[tokio::test]
async fn the_ready_file_appears_once_partitions_are_assigned_and_a_record_then_arrives_at_once() {
    let config = config();
    let topic = unique("esm-ready");
    kafka::ensure_topics(&config.kafka, &[(&topic, 2)])
        .await
        .expect("topic");
    let (stub, url) = start_stub(0).await;
    let ready = std::env::temp_dir().join(format!("{}.ready", unique("esm")));
    let mut settings = settings(&config, &topic, &unique("esm"), &url);
    settings.ready_file = Some(ready.clone());
    let task = tokio::spawn(local_kafka_esm::run(settings));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the event source never said it was ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What the local stack waits for before it opens the API: from here, a send is applied
    // without waiting for the group to form.
    let sent = Instant::now();
    produce(&config, &topic, 1, "right after ready").await;
    wait_for(&stub, "the record sent right after ready", |events| {
        events
            .iter()
            .any(|(e, _)| values(e) == ["right after ready"])
    })
    .await;
    let took = sent.elapsed();
    task.abort();
    let _ = std::fs::remove_file(&ready);
    assert!(took < Duration::from_secs(3), "delivered after {took:?}");
}
