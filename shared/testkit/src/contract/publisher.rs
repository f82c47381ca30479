//! The publisher's contract: what the Kafka producer does and [`crate::MemoryPublisher`] must do
//! too, as far as a caller of the port can see it (where a record landed, where a partition
//! ends). Run against the fake in `chat-testkit`'s tests and against the broker of `make test`
//! in `chat-kafka`'s, through [`crate::publisher_contract!`].
//!
//! Each case gets a publisher and a topic of its own with [`PARTITIONS`] partitions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chat_core::publish::{PublishError, Publisher};

/// How many partitions a case's topic has.
pub const PARTITIONS: i32 = 4;

/// Runs every case of the publisher's contract as a test, each on what `$make` (an expression
/// of a future of `(publisher, topic)`) gives it.
#[macro_export]
macro_rules! publisher_contract {
    ($make:expr) => {
        $crate::publisher_contract!(@cases $make;
            a_record_reports_where_it_landed_and_the_partition_end_follows_it,
            one_keys_records_share_a_partition_with_consecutive_offsets,
            concurrent_publishes_get_distinct_coordinates,
            a_traced_record_lands_as_any_other,
            a_partition_the_topic_lacks_is_rejected,
            a_topic_that_does_not_exist_fails_as_unavailable);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (publisher, topic) = $make.await;
                $crate::contract::publisher::$case(::std::sync::Arc::new(publisher), &topic).await;
            }
        )*
    };
}

pub async fn a_record_reports_where_it_landed_and_the_partition_end_follows_it<P: Publisher>(
    publisher: Arc<P>,
    topic: &str,
) {
    let first = publisher
        .publish(topic, "2", b"one")
        .await
        .expect("publish");
    assert!((0..PARTITIONS).contains(&first.partition), "{first:?}");
    assert_eq!(
        publisher.partition_end(topic, first.partition).await,
        Ok(Some(first.offset + 1))
    );
    let second = publisher
        .publish(topic, "2", b"two")
        .await
        .expect("publish");
    assert_eq!(
        (second.partition, second.offset),
        (first.partition, first.offset + 1)
    );
    assert_eq!(
        publisher.partition_end(topic, first.partition).await,
        Ok(Some(second.offset + 1))
    );
}

pub async fn one_keys_records_share_a_partition_with_consecutive_offsets<P: Publisher>(
    publisher: Arc<P>,
    topic: &str,
) {
    let mut landed: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    for round in 0..5 {
        for key in ["1", "2", "3", "17", "1024"] {
            let at = publisher
                .publish(topic, key, format!("{key}/{round}").as_bytes())
                .await
                .expect("publish");
            landed
                .entry(key.to_owned())
                .or_default()
                .push((at.partition, at.offset));
        }
    }
    for (key, places) in &landed {
        let partitions: HashSet<i32> = places.iter().map(|(p, _)| *p).collect();
        assert_eq!(partitions.len(), 1, "key {key} landed in {places:?}");
        assert!(
            places.windows(2).all(|w| w[0].1 < w[1].1),
            "key {key}: {places:?}"
        );
    }
    // Per partition, the offsets handed out are 0, 1, 2, ... with none twice.
    let mut per_partition: HashMap<i32, Vec<i64>> = HashMap::new();
    for (partition, offset) in landed.values().flatten() {
        per_partition.entry(*partition).or_default().push(*offset);
    }
    for (partition, mut offsets) in per_partition {
        offsets.sort_unstable();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, expected, "partition {partition}");
    }
}

pub async fn concurrent_publishes_get_distinct_coordinates<P: Publisher + 'static>(
    publisher: Arc<P>,
    topic: &str,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (publisher, topic) = (publisher.clone(), topic.to_owned());
        tasks.spawn(async move {
            let key = (i % 7 + 1).to_string();
            publisher
                .publish(&topic, &key, i.to_string().as_bytes())
                .await
        });
    }
    let mut seen = HashSet::new();
    while let Some(result) = tasks.join_next().await {
        let at = result.expect("task").expect("publish");
        assert!(seen.insert(at), "{at:?} handed out twice");
    }
    let mut total = 0;
    for partition in 0..PARTITIONS {
        total += publisher
            .partition_end(topic, partition)
            .await
            .expect("end")
            .expect("known");
    }
    assert_eq!(total, 100);
}

pub async fn a_traced_record_lands_as_any_other<P: Publisher>(publisher: Arc<P>, topic: &str) {
    let plain = publisher
        .publish(topic, "5", b"plain")
        .await
        .expect("publish");
    let traced = publisher
        .publish_traced(topic, "5", b"traced", "received=1")
        .await
        .expect("publish");
    assert_eq!(
        (traced.partition, traced.offset),
        (plain.partition, plain.offset + 1)
    );
}

/// Edits and deletes ask where a partition ends to tell an id never sent from one not stored
/// yet; a partition the topic does not have is a refusal, not an end.
pub async fn a_partition_the_topic_lacks_is_rejected<P: Publisher>(publisher: Arc<P>, topic: &str) {
    let refused = publisher.partition_end(topic, PARTITIONS + 3).await;
    assert!(
        matches!(refused, Err(PublishError::Rejected(_))),
        "{refused:?}"
    );
}

/// Topics are created by set-up, never by a publish: a record for a topic that does not exist
/// fails. As unavailable, not refused: the producer cannot tell a topic that does not exist
/// from one whose leader does not answer (both end in its delivery timeout), so neither may a
/// fake. (The fake once said refused; this case found the difference.)
pub async fn a_topic_that_does_not_exist_fails_as_unavailable<P: Publisher>(
    publisher: Arc<P>,
    topic: &str,
) {
    let missing = format!("{topic}-missing");
    let failed = publisher.publish(&missing, "1", b"lost").await;
    assert!(
        matches!(failed, Err(PublishError::Unavailable(_))),
        "{failed:?}"
    );
}
