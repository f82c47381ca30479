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
/// and the event source started before it, and the event source held its partitions (it
/// writes `event-source.ready` then). Read from the files the supervisor keeps beside each
/// service (its pid file is written when it is started).
#[test]
fn the_gateway_is_started_only_once_the_functions_and_the_event_source_are_ready() {
    let api =
        std::path::Path::new(&chat_testkit::services::require_env("CHAT_TEST_DATA")).join("api");
    let modified = |name: &str| {
        std::fs::metadata(api.join(name))
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{name} in {}: {e}", api.display()))
    };
    let gateway = modified("API-Gateway.pid");
    let ready = modified("event-source.ready");
    assert!(
        ready <= gateway,
        "the gateway started before the event source was ready"
    );
    let functions: Vec<String> = std::fs::read_dir(&api)
        .expect("the api folder")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pid") && n != "API-Gateway.pid")
        .collect();
    assert!(functions.len() > 10, "{functions:?}");
    for pid_file in functions {
        assert!(
            modified(&pid_file) <= gateway,
            "{pid_file} started after the gateway"
        );
    }
}
