//! The local stack as `chatctl setup` leaves it (run by `make dev` and `make test`): the chat
//! and dead-letter topics, the tables, and the original app's four users.

use chat_core::store::Directory;
use std::time::Duration;

use chat_core::compat::seed_users;
use chat_core::domain::GroupId;
use chat_kafka as kafka;
use chat_store::DynamoStore;
use chat_testkit::services::config;

#[test]
fn the_chat_topic_has_several_partitions_and_a_dead_letter_topic() {
    let config = config();
    let k = &config.kafka;
    let partitions = kafka::partition_count(k, &k.chat_topic, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}: is Kafka running (`make test` starts it)?"));
    assert!(
        partitions >= 2,
        "{} has {partitions} partition(s)",
        k.chat_topic
    );
    let dead_letters = kafka::partition_count(k, &k.dead_letter_topic, Duration::from_secs(5))
        .expect("dead-letter topic exists");
    assert!(dead_letters >= 1);
}

#[tokio::test]
async fn the_original_four_users_and_their_groups_are_seeded() {
    let config = config();
    let store = DynamoStore::from_config(&config.dynamodb).await;
    let users = store
        .list_users()
        .await
        .unwrap_or_else(|e| panic!("{e}: is DynamoDB Local running (`make test` starts it)?"));
    // Other tests add users of their own, with larger ids: the original four come first.
    assert_eq!(users[..4.min(users.len())], seed_users()[..]);
    for group in [1, 2] {
        let group = store
            .get_group(GroupId::new(group).expect("id"))
            .await
            .expect("get group");
        assert!(group.is_some(), "group missing");
    }
}

/// When the gateway first answers, the whole path behind it is warm: every function instance
/// and the event source were ready before it (the event source once the group assigned it its
/// partitions). The supervisor notes the order in which the services became ready at start.
#[test]
fn the_gateway_is_started_only_once_the_functions_and_the_event_source_are_ready() {
    let api = std::path::Path::new(&chat_testkit::services::require_env("CHAT_TEST_DATA"))
        .join("api")
        .join(local_stack::supervisor::READY_LOG);
    let text = std::fs::read_to_string(&api).unwrap_or_else(|e| panic!("{}: {e}", api.display()));
    let order: Vec<&str> = text.lines().collect();
    assert_eq!(order.last(), Some(&"API-Gateway"), "{order:?}");
    assert!(order.contains(&"event-source"), "{order:?}");
    let instances = order
        .iter()
        .filter(|name| name.starts_with("kafka-consumer-") || name.starts_with("send-message-"))
        .count();
    assert!(instances >= 2, "{order:?}");
}
