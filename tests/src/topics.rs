//! Reading whole topics, for tests that look at what reached the log or the dead-letter topic.

use std::time::{Duration, Instant};

use chat_core::config::Config;
use chat_kafka::{self as kafka, KafkaContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};

/// Every record of `topic`, all partitions, from the start to their current ends: key and value.
pub fn topic_records(config: &Config, topic: &str) -> Vec<(String, Vec<u8>)> {
    let partitions = kafka::partition_count(&config.kafka, topic, Duration::from_secs(10))
        .expect("partition count");
    let partitions: Vec<i32> = (0..partitions as i32).collect();
    read_records(config, topic, &partitions).0
}

/// The records of `partitions` of `topic` from their starts to their current ends (what was
/// read within 30 s), and how many there are.
pub fn read_records(
    config: &Config,
    topic: &str,
    partitions: &[i32],
) -> (Vec<(String, Vec<u8>)>, i64) {
    let consumer: BaseConsumer<KafkaContext> = kafka::consumer_config(&config.kafka, "e2e-reader")
        .expect("kafka settings")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0;
    for &partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .expect("watermarks");
        expected += high - low;
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(low))
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (records.len() as i64) < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            records.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    (records, expected)
}
