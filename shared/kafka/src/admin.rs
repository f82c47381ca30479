//! Topic administration through Kafka's own admin protocol, for set-up and tests (the `admin`
//! feature): no function carries it.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use super::client::{client_config, KafkaContext};
use super::producer::classify;
use chat_core::config::KafkaConfig;
use chat_core::publish::PublishError;

/// Fails, saying why, unless a broker answers a metadata request within `timeout`.
pub fn check_broker(config: &KafkaConfig, timeout: Duration) -> Result<(), String> {
    let consumer = metadata_client(config).map_err(|e| e.to_string())?;
    consumer
        .fetch_metadata(None, Timeout::After(timeout))
        .map(|_| ())
        .map_err(|e| format!("no broker answered within {timeout:?}: {e}"))
}

/// Creates each `(topic, partitions)` that does not exist yet. Existing topics are left as
/// they are (their partition count is not changed: that would move groups between partitions).
pub async fn ensure_topics(
    config: &KafkaConfig,
    topics: &[(&str, i32)],
) -> Result<(), PublishError> {
    let client_config = client_config(config)?;
    if client_config.uses_msk_iam() {
        // rdkafka's admin client never serves librdkafka's token requests: on MSK the topics
        // are created with the cluster, and only checked here.
        for (name, _) in topics {
            partition_count(config, name, config.timeout).map_err(|e| {
                PublishError::Rejected(format!(
                    "{e}; on an MSK IAM cluster create topics with kafka-topics.sh (see the README)"
                ))
            })?;
        }
        return Ok(());
    }
    let admin: AdminClient<KafkaContext> = client_config
        .create()
        .map_err(|e| PublishError::Rejected(e.to_string()))?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(config.timeout))
        .operation_timeout(Some(config.timeout));
    let results = tokio::time::timeout(
        config.timeout + Duration::from_secs(1),
        admin.create_topics(&new_topics, &options),
    )
    .await
    .map_err(|_| PublishError::Unavailable("CreateTopics got no answer in time".into()))?
    .map_err(classify)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(PublishError::Rejected(format!(
                    "could not create topic {topic}: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// A client for metadata requests, authenticated before its first request.
fn metadata_client(config: &KafkaConfig) -> Result<BaseConsumer<KafkaContext>, PublishError> {
    let consumer: BaseConsumer<KafkaContext> = client_config(config)?
        .create()
        .map_err(|e| PublishError::Rejected(e.to_string()))?;
    // librdkafka queues its first token request at creation; metadata calls do not poll, so
    // serve it now (a no-op without MSK IAM).
    let _ = consumer.poll(Duration::ZERO);
    Ok(consumer)
}

/// How many partitions `topic` has, from the broker's metadata.
pub fn partition_count(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<usize, PublishError> {
    let consumer = metadata_client(config)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Timeout::After(timeout))
        .map_err(classify)?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .ok_or_else(|| PublishError::Rejected(format!("topic {topic} does not exist")))
}

/// The end (next offset) of each partition of `topic`, by partition number.
pub fn partition_ends(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i64>, PublishError> {
    let partitions = partition_count(config, topic, timeout)?;
    let consumer = metadata_client(config)?;
    (0..partitions as i32)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Timeout::After(timeout))
                .map(|(_, high)| high)
                .map_err(classify)
        })
        .collect()
}
