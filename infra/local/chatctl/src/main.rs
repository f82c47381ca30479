//! `chatctl`: the local stack's set-up and a small Kafka client for the terminal.
//!
//! Set-up goes through Kafka's own admin protocol (the AdminClient of the librdkafka we link),
//! so it works the same on any Kafka: the local broker, MSK, Confluent, Redpanda. Watching and
//! feeding topics needs no Java or kcat on the laptop. All settings come from the same
//! environment variables as the functions.

use shared::store::Directory;
use shared::store::Messages;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message as _;
use shared::config::Config;
use shared::domain::{seed_groups, seed_users};
use shared::kafka::{self, KafkaContext, KafkaPublisher};
use shared::publish::Publisher;
use shared::store::dynamodb::DynamoStore;
use shared::store::{Cursor, PageRequest};

const USAGE: &str = "\
usage: chatctl <command> [options]

commands:
  setup [--partitions N]     check Kafka and DynamoDB, create the chat and dead-letter topics
                             (default 4 partitions), the tables, and the original four users
  topics                     list topics and their partition counts
  create-topic TOPIC [--partitions N]
                             create a topic (default 1 partition) unless it exists
  users                      print the users table as JSON lines
  produce [TOPIC] [--key K]  send each line of standard input as one record (default topic:
                             CHAT_TOPIC; default key: the line's group, else none)
  consume [TOPIC] [--from-beginning] [--count N] [--idle-ms MS]
                             print records as JSON lines until Ctrl-C, N records, or MS
                             milliseconds without a record
  watch GROUP_ID [--url URL] [--count N]
                             subscribe to a group over WebSocket (default URL
                             ws://127.0.0.1:8000) and print every frame until Ctrl-C

configuration: KAFKA_BOOTSTRAP_SERVERS, CHAT_TOPIC, DEAD_LETTER_TOPIC, DYNAMODB_ENDPOINT,
AWS_REGION, USERS_TABLE, MESSAGES_TABLE, CONNECTIONS_TABLE (see README.md)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chatctl: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let (command, rest) = args.split_first().ok_or_else(|| USAGE.to_owned())?;
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return Ok(());
    }
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let options = Options::parse(rest)?;
    match command.as_str() {
        "setup" => setup(&config, &options).await,
        "topics" => topics(&config),
        "create-topic" => create_topic(&config, &options).await,
        "users" => users(&config).await,
        "produce" => produce(&config, &options).await,
        "consume" => consume(&config, &options).await,
        "watch" => watch(&options).await,
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

#[derive(Default)]
struct Options {
    topic: Option<String>,
    partitions: Option<i32>,
    key: Option<String>,
    from_beginning: bool,
    count: Option<u64>,
    idle: Option<Duration>,
    url: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let number = |name: &str, v: String| {
                v.parse::<u64>()
                    .map_err(|_| format!("{name} takes a whole number, got `{v}`"))
            };
            match arg.as_str() {
                "--partitions" => {
                    let n = number(arg, value(arg)?)?;
                    o.partitions = Some(
                        i32::try_from(n)
                            .ok()
                            .filter(|n| (1..=1024).contains(n))
                            .ok_or("--partitions takes 1 to 1024")?,
                    );
                }
                "--key" => o.key = Some(value(arg)?),
                "--url" => o.url = Some(value(arg)?),
                "--from-beginning" => o.from_beginning = true,
                "--count" => o.count = Some(number(arg, value(arg)?)?),
                "--idle-ms" => o.idle = Some(Duration::from_millis(number(arg, value(arg)?)?)),
                flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
                topic if o.topic.is_none() => o.topic = Some(topic.to_owned()),
                extra => return Err(format!("unexpected argument `{extra}`")),
            }
        }
        Ok(o)
    }
}

fn kafka_unreachable(config: &Config, e: impl std::fmt::Display) -> String {
    format!(
        "Kafka is not reachable at {} ({e}); start the local stack with `make dev`, or set \
         KAFKA_BOOTSTRAP_SERVERS to a running broker",
        config.kafka.bootstrap_servers
    )
}

async fn store(config: &Config) -> Result<DynamoStore, String> {
    let store = DynamoStore::from_config(&config.dynamodb).await;
    store.check().await.map_err(|e| {
        format!(
            "DynamoDB is not reachable at {} ({e}); start the local stack with `make dev`, or \
             set DYNAMODB_ENDPOINT to a running DynamoDB Local",
            config
                .dynamodb
                .endpoint
                .as_deref()
                .unwrap_or("its AWS endpoint")
        )
    })?;
    Ok(store)
}

async fn setup(config: &Config, options: &Options) -> Result<(), String> {
    let started = Instant::now();
    kafka::check_broker(&config.kafka, Duration::from_secs(5))
        .map_err(|e| kafka_unreachable(config, e))?;
    let store = store(config).await?;
    let partitions = options.partitions.unwrap_or(4);
    let k = &config.kafka;
    kafka::ensure_topics(k, &[(&k.chat_topic, partitions), (&k.dead_letter_topic, 1)])
        .await
        .map_err(|e| e.to_string())?;
    store.ensure_tables().await.map_err(|e| e.to_string())?;
    check_log_matches_store(config, &store).await?;
    for group in seed_groups() {
        store.put_group(&group).await.map_err(|e| e.to_string())?;
    }
    for user in seed_users() {
        store.put_user(&user).await.map_err(|e| e.to_string())?;
    }
    let chat_partitions =
        kafka::partition_count(k, &k.chat_topic, k.timeout).map_err(|e| e.to_string())?;
    let t = store.tables();
    println!(
        "ready in {:.1}s: topics {} ({chat_partitions} partitions) and {}; tables {}, {}, {}; {} users",
        started.elapsed().as_secs_f64(),
        k.chat_topic,
        k.dead_letter_topic,
        t.users,
        t.messages,
        t.connections,
        store.list_users().await.map_err(|e| e.to_string())?.len(),
    );
    Ok(())
}

/// Message ids come from the chat topic's offsets. A store holding a message at or beyond the
/// end of its partition was filled from another log (a broker's data wiped, another cluster):
/// new messages would take ids that already exist, and be taken for replays and lost.
async fn check_log_matches_store(config: &Config, store: &DynamoStore) -> Result<(), String> {
    let k = &config.kafka;
    let ends = kafka::partition_ends(k, &k.chat_topic, k.timeout).map_err(|e| e.to_string())?;
    let groups: std::collections::BTreeSet<_> = store
        .list_users()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|u| u.group_id)
        .collect();
    for group in groups {
        let newest = store
            .list_messages(
                group,
                PageRequest {
                    limit: 1,
                    cursor: Cursor::Latest,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let Some(message) = newest.messages.last() else {
            continue;
        };
        let at = message.id.coordinates();
        let end = ends.get(at.partition as usize).copied().unwrap_or(0);
        if at.offset >= end {
            return Err(format!(
                "DynamoDB holds message {} of group {group} (partition {} offset {}), but {} \
                 partition {} ends at offset {end}: the tables were filled from another Kafka \
                 log, and new messages would reuse their ids. Use the tables with the broker \
                 they came from, or start afresh (for make dev: move .data/dev aside)",
                message.id, at.partition, at.offset, k.chat_topic, at.partition
            ));
        }
    }
    Ok(())
}

async fn create_topic(config: &Config, options: &Options) -> Result<(), String> {
    let topic = options
        .topic
        .as_deref()
        .ok_or("create-topic needs a TOPIC")?;
    let partitions = options.partitions.unwrap_or(1);
    kafka::ensure_topics(&config.kafka, &[(topic, partitions)])
        .await
        .map_err(|e| kafka_unreachable(config, e))?;
    let count = kafka::partition_count(&config.kafka, topic, config.kafka.timeout)
        .map_err(|e| e.to_string())?;
    println!("{topic}\t{count} partitions");
    Ok(())
}

fn topics(config: &Config) -> Result<(), String> {
    let consumer: StreamConsumer<KafkaContext> = kafka::client_config(&config.kafka)
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(|e| kafka_unreachable(config, e))?;
    for topic in metadata.topics() {
        println!("{}\t{} partitions", topic.name(), topic.partitions().len());
    }
    Ok(())
}

async fn users(config: &Config) -> Result<(), String> {
    let users = store(config)
        .await?
        .list_users()
        .await
        .map_err(|e| e.to_string())?;
    for user in users {
        println!(
            "{}",
            serde_json::to_string(&user).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

/// The key a line gets without `--key`: its group, so that a group's records share a partition
/// as our producers do (`group_id`, else nothing: the consumer finds the user's group).
fn default_key(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value
        .get("group_id")
        .and_then(|g| g.as_u64())
        .map(|g| g.to_string())
}

async fn produce(config: &Config, options: &Options) -> Result<(), String> {
    let topic = options.topic.as_deref().unwrap_or(&config.kafka.chat_topic);
    let publisher = KafkaPublisher::new(&config.kafka).map_err(|e| e.to_string())?;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("cannot read standard input: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let key = options
            .key
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

async fn consume(config: &Config, options: &Options) -> Result<(), String> {
    let topic = options.topic.as_deref().unwrap_or(&config.kafka.chat_topic);
    // A throw-away group that never commits: watching must not move anyone's offsets.
    let group = format!("chatctl-{}-{}", std::process::id(), chrono_free_nanos());
    let consumer: StreamConsumer<KafkaContext> = kafka::consumer_config(&config.kafka, &group)
        .map_err(|e| e.to_string())?
        .set(
            "auto.offset.reset",
            if options.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .create()
        .map_err(|e| e.to_string())?;
    kafka::partition_count(&config.kafka, topic, Duration::from_secs(5))
        .map_err(|e| kafka_unreachable(config, e))?;
    consumer.subscribe(&[topic]).map_err(|e| e.to_string())?;
    let mut seen = 0u64;
    let mut out = std::io::stdout();
    while options.count.is_none_or(|n| seen < n) {
        let next = match options.idle {
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

/// Prints the frames of a group's WebSocket, as a browser client of the chat would get them.
async fn watch(options: &Options) -> Result<(), String> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let group = options.topic.as_deref().ok_or("watch needs a GROUP_ID")?;
    let base = options
        .url
        .as_deref()
        .unwrap_or("ws://127.0.0.1:8000")
        .trim_end_matches('/');
    let url = format!("{base}/subscribe/{group}");
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                format!(
                    "{url} refused the subscription: {} {body}",
                    response.status()
                )
            }
            other => format!("cannot reach {url} ({other}); is `make dev` running?"),
        })?;
    eprintln!("subscribed to group {group} at {url}; Ctrl-C stops");
    let mut seen = 0u64;
    while options.count.is_none_or(|n| seen < n) {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                println!("{text}");
                seen += 1;
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("the server closed the socket: {frame:?}"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the socket ended".into()),
        }
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

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_parse_topic_flags_and_numbers() {
        let o = parse(&[
            "chat",
            "--from-beginning",
            "--count",
            "3",
            "--idle-ms",
            "250",
        ])
        .expect("valid");
        assert_eq!(o.topic.as_deref(), Some("chat"));
        assert!(o.from_beginning);
        assert_eq!(o.count, Some(3));
        assert_eq!(o.idle, Some(Duration::from_millis(250)));
        assert_eq!(
            parse(&["--partitions", "8"]).expect("valid").partitions,
            Some(8)
        );
    }

    #[test]
    fn bad_options_are_explained() {
        for (args, why) in [
            (&["--count"][..], "needs a value"),
            (&["--count", "many"][..], "whole number"),
            (&["--partitions", "0"][..], "1 to 1024"),
            (&["--partitions", "5000"][..], "1 to 1024"),
            (&["--bogus"][..], "unknown option"),
            (&["a", "b"][..], "unexpected argument"),
        ] {
            let err = parse(args).err().unwrap_or_default();
            assert!(err.contains(why), "{args:?}: {err}");
        }
    }

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
