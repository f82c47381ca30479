//! The producer against the real broker: acknowledged sends report where they landed, a
//! group's events share a partition in order, and an absent broker fails fast.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chat_core::config::Config;
use chat_core::domain::{GroupId, MessageId, MessageText, UserId};
use chat_core::events::{ChatEvent, IncomingEvent};
use chat_core::publish::{PublishError, Publisher};
use chat_kafka::{self as kafka, KafkaContext, KafkaPublisher};
use chat_testkit::services::{kafka_config, unique, unreachable_config};
use chrono::Utc;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message as _;

mod common;
use common::own_topic;

/// Reads `count` records of `topic` from the beginning, failing after 20 s.
async fn read(config: &Config, topic: &str, count: usize) -> Vec<(i32, i64, String, Vec<u8>)> {
    read_records(config, topic, count)
        .await
        .iter()
        .map(|m| {
            (
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().unwrap_or_default().to_vec(),
            )
        })
        .collect()
}

async fn read_records(config: &Config, topic: &str, count: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer<KafkaContext> =
        kafka::consumer_config(&config.kafka, &unique("reader"))
            .expect("kafka settings")
            .create()
            .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while records.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} records arrived", records.len()))
            .expect("record");
        records.push(m.detach());
    }
    records
}

#[tokio::test]
async fn a_published_record_lands_where_the_producer_says() {
    let config = kafka_config();
    let topic = own_topic(&config, 3).await;
    let publisher = KafkaPublisher::new(&config.kafka).expect("producer");
    let at = publisher
        .publish(&topic, "2", b"{\"hello\":1}")
        .await
        .expect("publish");
    let records = read(&config, &topic, 1).await;
    assert_eq!(
        records,
        vec![(
            at.partition,
            at.offset,
            "2".to_owned(),
            b"{\"hello\":1}".to_vec()
        )]
    );
}

#[tokio::test]
async fn a_traced_record_carries_its_stamps_in_a_header_and_others_carry_none() {
    let config = kafka_config();
    let topic = own_topic(&config, 1).await;
    let publisher = KafkaPublisher::new(&config.kafka).expect("producer");
    let event = ChatEvent::MessageSent {
        group_id: GroupId::new(1).expect("group"),
        user_id: UserId::new(1).expect("user"),
        message: MessageText::new("traced").expect("text"),
        client_message_id: None,
        sent_at: Utc::now(),
    };
    let trace = chat_core::trace::Trace::start("received");
    chat_core::publish::publish_event(&publisher, &topic, &event, Some(&trace))
        .await
        .expect("publish");
    chat_core::publish::publish_event(&publisher, &topic, &event, None)
        .await
        .expect("publish");
    let records = read_records(&config, &topic, 2).await;
    let header = records[0]
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == chat_core::trace::RECORD_HEADER))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned());
    assert_eq!(header, Some(trace.to_header()));
    assert!(records[1].headers().is_none_or(|h| h.count() == 0));
}

#[tokio::test]
async fn a_groups_events_share_one_partition_with_increasing_ids() {
    let config = kafka_config();
    let topic = own_topic(&config, 4).await;
    let publisher = KafkaPublisher::new(&config.kafka).expect("producer");
    let group = GroupId::new(1).expect("group");
    let mut ids = Vec::new();
    let mut partitions = HashSet::new();
    for i in 0..20 {
        let event = ChatEvent::MessageSent {
            group_id: group,
            user_id: UserId::new(1).expect("user"),
            message: MessageText::new(format!("message {i}")).expect("text"),
            client_message_id: None,
            sent_at: Utc::now(),
        };
        let at = chat_core::publish::publish_event(&publisher, &topic, &event, None)
            .await
            .expect("publish");
        partitions.insert(at.partition);
        ids.push(MessageId::from_coordinates(at).expect("id"));
    }
    assert_eq!(partitions.len(), 1);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let records = read(&config, &topic, 20).await;
    for (i, (_, _, key, value)) in records.iter().enumerate() {
        assert_eq!(key, "1");
        match IncomingEvent::decode(value).expect("decodes") {
            IncomingEvent::Event(ChatEvent::MessageSent { message, .. }) => {
                assert_eq!(message.as_str(), format!("message {i}"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_publishes_get_distinct_coordinates() {
    let config = kafka_config();
    let topic = own_topic(&config, 4).await;
    let publisher = std::sync::Arc::new(KafkaPublisher::new(&config.kafka).expect("producer"));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let publisher = publisher.clone();
            let topic = topic.clone();
            tokio::spawn(async move {
                let key = (i % 7 + 1).to_string();
                publisher
                    .publish(&topic, &key, format!("{i}").as_bytes())
                    .await
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        let at = task.await.expect("task").expect("publish");
        assert!(seen.insert(at), "duplicate coordinates {at:?}");
    }
    assert_eq!(read(&config, &topic, 200).await.len(), 200);
}

#[tokio::test]
async fn creating_topics_again_keeps_them_as_they_are() {
    let config = kafka_config();
    let topic = own_topic(&config, 3).await;
    kafka::ensure_topics(&config.kafka, &[(&topic, 6)])
        .await
        .expect("again");
    let partitions =
        kafka::partition_count(&config.kafka, &topic, Duration::from_secs(5)).expect("metadata");
    assert_eq!(partitions, 3);
}

#[tokio::test]
async fn an_unreachable_broker_fails_the_publish_in_bounded_time() {
    let config = unreachable_config();
    let publisher = KafkaPublisher::new(&config.kafka).expect("producer is lazy");
    let started = Instant::now();
    let err = publisher
        .publish("chat-events", "1", b"{}")
        .await
        .expect_err("no broker");
    assert!(matches!(err, PublishError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let chat: chat_core::ChatError = err.into();
    assert_eq!((chat.status(), chat.retry_after()), (503, Some(1)));
    assert!(kafka::check_broker(&config.kafka, Duration::from_millis(500)).is_err());
}
