//! The publisher's contract (`chat_testkit::contract::publisher`), against the broker of
//! `make test`: each case with a producer and a topic of its own.

mod common;

use chat_testkit::contract::publisher::PARTITIONS;
use chat_testkit::services::kafka_config;

chat_testkit::publisher_contract!(async {
    let config = kafka_config();
    let topic = common::own_topic(&config, PARTITIONS).await;
    let publisher = chat_kafka::KafkaPublisher::new(&config.kafka).expect("producer");
    (publisher, topic)
});
