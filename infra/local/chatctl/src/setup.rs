//! Set-up of topics, tables and the original users, and looking at what is there.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chat_core::compat::{seed_groups, seed_users};
use chat_core::config::Config;
use chat_core::domain::{Member, Role, PARTITION_SLOTS};
use chat_core::store::{Cursor, Directory, DirectoryWriter, MessageReader, PageRequest};
use chat_kafka::{self as kafka, KafkaContext};
use chat_store::DynamoStore;
use rdkafka::consumer::{Consumer, StreamConsumer};

use crate::kafka_unreachable;

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

pub async fn setup(config: &Config, partitions: i32) -> Result<(), String> {
    let started = Instant::now();
    check_partition_count(partitions)?;
    kafka::check_broker(&config.kafka, Duration::from_secs(5))
        .map_err(|e| kafka_unreachable(config, e))?;
    let store = store(config).await?;
    let k = &config.kafka;
    kafka::ensure_topics(k, &[(&k.chat_topic, partitions), (&k.dead_letter_topic, 1)])
        .await
        .map_err(|e| e.to_string())?;
    store.ensure_tables().await.map_err(|e| e.to_string())?;
    check_log_matches_store(config, &store).await?;
    // The original app's users, unless turned off (chat_core::compat, `seed-users`).
    if config.compat.seed_users {
        for group in seed_groups() {
            store.put_group(&group).await.map_err(|e| e.to_string())?;
        }
        for user in seed_users() {
            store.put_user(&user).await.map_err(|e| e.to_string())?;
        }
    }
    first_group_memberships(&store).await?;
    let chat_partitions =
        kafka::partition_count(k, &k.chat_topic, k.timeout).map_err(|e| e.to_string())?;
    check_partition_count(i32::try_from(chat_partitions).unwrap_or(i32::MAX))?;
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

/// The original users and groups into the users table: DynamoDB only, so that a deployed
/// stack's directory can be filled from a laptop (the cluster is inside the VPC).
pub async fn seed(config: &Config) -> Result<(), String> {
    let store = store(config).await?;
    for group in seed_groups() {
        store.put_group(&group).await.map_err(|e| e.to_string())?;
    }
    for user in seed_users() {
        store.put_user(&user).await.map_err(|e| e.to_string())?;
    }
    first_group_memberships(&store).await?;
    println!(
        "{} users in {}",
        store.list_users().await.map_err(|e| e.to_string())?.len(),
        store.tables().users
    );
    Ok(())
}

/// Signs a user up as the user pool's triggers do on AWS (`chat_core::signup`), under an
/// account of its own; their id, the user printed on standard error.
pub async fn user_add(config: &Config, name: &str) -> Result<chat_core::domain::UserId, String> {
    let store = store(config).await?;
    let account = format!("local:{}", uuid::Uuid::new_v4());
    let user_id = chat_core::signup::sign_up(&store, &account, name)
        .await
        .map_err(|e| e.public_message())?;
    let user = store
        .get_user(user_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the user just signed up is missing")?;
    eprintln!(
        "{}",
        serde_json::to_string(&user).map_err(|e| e.to_string())?
    );
    Ok(user_id)
}

/// Makes every user a member of their first group (`group_id`) unless a membership, or its
/// removal, is recorded: users made before groups had members keep their group, and one who
/// left it stays out.
async fn first_group_memberships(store: &DynamoStore) -> Result<(), String> {
    for user in store.list_users().await.map_err(|e| e.to_string())? {
        let member = Member {
            group_id: user.group_id,
            user_id: user.user_id,
            role: Role::Member,
            read_mark: 0,
        };
        store
            .seed_member(&member)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Message ids come from the chat topic's offsets. A store holding a message at or beyond the
/// end of its partition was filled from another log (a broker's data wiped, another cluster):
/// new messages would take ids that already exist, and be taken for replays and lost.
async fn check_log_matches_store(config: &Config, store: &DynamoStore) -> Result<(), String> {
    let k = &config.kafka;
    let ends = kafka::partition_ends(k, &k.chat_topic, k.timeout).map_err(|e| e.to_string())?;
    let groups: BTreeSet<_> = store
        .list_groups()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|g| g.group_id)
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

pub async fn create_topic(config: &Config, topic: &str, partitions: i32) -> Result<(), String> {
    kafka::ensure_topics(&config.kafka, &[(topic, partitions)])
        .await
        .map_err(|e| kafka_unreachable(config, e))?;
    let count = kafka::partition_count(&config.kafka, topic, config.kafka.timeout)
        .map_err(|e| e.to_string())?;
    println!("{topic}\t{count} partitions");
    Ok(())
}

pub fn topics(config: &Config) -> Result<(), String> {
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

pub async fn users(config: &Config) -> Result<(), String> {
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

/// Message ids hold the partition in [`PARTITION_SLOTS`] slots: a topic with more partitions
/// would give two messages one id, so it is refused before anything is written.
fn check_partition_count(partitions: i32) -> Result<(), String> {
    if !(1..=PARTITION_SLOTS as i32).contains(&partitions) {
        return Err(format!(
            "the chat topic has {partitions} partitions; message ids allow 1 to {PARTITION_SLOTS}"
        ));
    }
    Ok(())
}
