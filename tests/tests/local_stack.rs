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
