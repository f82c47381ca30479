//! Feeding and reading topics from the terminal: one record per line, as JSON.

use std::io::{BufRead, Write};
use std::time::Duration;

use chat_core::config::Config;
use chat_core::publish::Publisher;
use chat_kafka::{self as kafka, KafkaContext, KafkaPublisher};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message as _;

use crate::kafka_unreachable;

/// The key a line gets without `--key`: its group, so that a group's records share a partition
/// as our producers do (`group_id`, else nothing: the consumer finds the user's group).
fn default_key(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value
        .get("group_id")
        .and_then(|g| g.as_u64())
        .map(|g| g.to_string())
}

pub async fn produce(
    config: &Config,
    topic: Option<String>,
    key: Option<String>,
) -> Result<(), String> {
    let topic = topic.as_deref().unwrap_or(&config.kafka.chat_topic);
    let publisher = KafkaPublisher::new(&config.kafka).map_err(|e| e.to_string())?;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("cannot read standard input: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let key = key
            .clone()
            .or_else(|| default_key(&line))
            .unwrap_or_default();
        let at = publisher
            .publish(topic, &key, line.as_bytes())
            .await
            .map_err(|e| kafka_unreachable(config, e))?;
        println!("{topic} partition {} offset {}", at.partition, at.offset);
    }
    Ok(())
}

pub async fn consume(
    config: &Config,
    topic: Option<String>,
    from_beginning: bool,
    count: Option<u64>,
    idle_ms: Option<u64>,
) -> Result<(), String> {
    let topic = topic.as_deref().unwrap_or(&config.kafka.chat_topic);
    let idle = idle_ms.map(Duration::from_millis);
    // A throw-away group that never commits: watching must not move anyone's offsets.
    let group = format!("chatctl-{}-{}", std::process::id(), chrono_free_nanos());
    let consumer: StreamConsumer<KafkaContext> = kafka::consumer_config(&config.kafka, &group)
        .map_err(|e| e.to_string())?
        .set(
            "auto.offset.reset",
            if from_beginning { "earliest" } else { "latest" },
        )
        .create()
        .map_err(|e| e.to_string())?;
    kafka::partition_count(&config.kafka, topic, Duration::from_secs(5))
        .map_err(|e| kafka_unreachable(config, e))?;
    consumer.subscribe(&[topic]).map_err(|e| e.to_string())?;
    let mut seen = 0u64;
    let mut out = std::io::stdout();
    while count.is_none_or(|n| seen < n) {
        let next = match idle {
            Some(idle) => match tokio::time::timeout(idle, consumer.recv()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => consumer.recv().await,
        };
        let record = next.map_err(|e| e.to_string())?;
        let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
        let value = record.payload().map(|b| {
            serde_json::from_slice::<serde_json::Value>(b)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(b).into()))
        });
        let line = serde_json::json!({
            "topic": record.topic(),
            "partition": record.partition(),
            "offset": record.offset(),
            "key": text(record.key()),
            "value": value,
        });
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        seen += 1;
    }
    Ok(())
}

fn chrono_free_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_keyed_by_its_group_when_it_names_one() {
        assert_eq!(
            default_key(r#"{"type":"message_sent","group_id":2}"#).as_deref(),
            Some("2")
        );
        assert_eq!(default_key(r#"{"user_id":1,"message":"hi"}"#), None);
        assert_eq!(default_key("not json"), None);
    }
}
