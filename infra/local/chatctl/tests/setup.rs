//! `chatctl setup` against the real broker and DynamoDB Local, on topics and tables of its own.

use chat_core::store::Directory;
use chat_core::store::MessageWriter;
use std::process::Command;

use chat_core::config::Config;
use chat_core::domain::{GroupId, Message, MessageId, MessageText, RecordCoordinates, UserId};
use chat_store::DynamoStore;
use chrono::Utc;

/// The environment of a stack of its own: the running services, fresh topic and table names.
fn isolated_env() -> Vec<(&'static str, String)> {
    chat_testkit::services::config();
    let tag = chat_testkit::services::unique("setup");
    vec![
        ("CHAT_TOPIC", tag.clone()),
        ("DEAD_LETTER_TOPIC", format!("{tag}-dlq")),
        ("USERS_TABLE", format!("{tag}-users")),
        ("MESSAGES_TABLE", format!("{tag}-messages")),
        ("CONNECTIONS_TABLE", format!("{tag}-connections")),
        ("IDEMPOTENCY_TABLE", format!("{tag}-idempotency")),
    ]
}

fn setup(env: &[(&str, String)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["setup", "--partitions", "2"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run chatctl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn setup_refuses_tables_filled_from_another_log() {
    let env = isolated_env();
    let (ok, stderr) = setup(&env);
    assert!(ok, "a fresh set-up succeeds: {stderr}");
    let (ok, stderr) = setup(&env);
    assert!(ok, "set-up can run again: {stderr}");

    // A message at an offset the (empty) topic never reached: the tables came from elsewhere.
    let config = Config::from_lookup(|name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    })
    .expect("configuration");
    let store = DynamoStore::from_config(&config.dynamodb).await;
    let alice = store
        .get_user(UserId::new(1).expect("id"))
        .await
        .expect("get")
        .expect("seeded");
    let id = MessageId::from_coordinates(RecordCoordinates {
        partition: 1,
        offset: 41,
    })
    .expect("id");
    store
        .insert_message(&Message {
            id,
            user_id: alice.user_id,
            name: alice.name.clone(),
            group_id: GroupId::new(1).expect("id"),
            message: MessageText::new("from another log").expect("text"),
            can_edit: alice.can_edit,
            can_delete: alice.can_delete,
            created_at: Utc::now(),
            edited_at: None,
        })
        .await
        .expect("insert");
    let (ok, stderr) = setup(&env);
    assert!(!ok, "set-up must refuse the tables");
    assert!(
        stderr.contains(&format!("message {id}")) && stderr.contains("another Kafka log"),
        "{stderr}"
    );
}
