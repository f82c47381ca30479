//! What the Kafka tests share: topics of their own on the broker of `make test`.

use chat_core::config::Config;
use chat_testkit::services::unique;

/// A topic of its own with `partitions` partitions, created for this test.
pub async fn own_topic(config: &Config, partitions: i32) -> String {
    let name = unique("test");
    chat_kafka::ensure_topics(&config.kafka, &[(&name, partitions)])
        .await
        .expect("topic created");
    name
}
