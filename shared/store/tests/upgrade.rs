//! A data folder kept across versions: the connections table made before its user index was
//! added is made again with it (its items die with the sockets of the gateway that ran
//! before), and the store works over it (DynamoDB Local of `make test`).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use chat_core::domain::{AllGroupsSocket, GroupId, UserId};
use chat_core::store::{ConnectionReader, ConnectionWriter};
use chat_store::{DynamoStore, GROUP_INDEX, USER_INDEX};
use chat_testkit::services::{config, with_own_tables};

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key")
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .expect("attribute")
}

#[tokio::test]
async fn a_connections_table_without_the_user_index_is_made_again_with_it() {
    let config = with_own_tables(config());
    let client = chat_store::client(&config.dynamodb).await;
    let table = config.dynamodb.tables.connections.clone();
    // The connections table as the versions before all-groups sockets made it.
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("connection_id", KeyType::Hash))
        .attribute_definitions(attribute("connection_id", ScalarAttributeType::S))
        .attribute_definitions(attribute("group_id", ScalarAttributeType::N))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GROUP_INDEX)
                .key_schema(key("group_id", KeyType::Hash))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("index"),
        )
        .send()
        .await
        .expect("the old table (is DynamoDB Local running? `make services`)");
    let store = DynamoStore::from_config(&config.dynamodb).await;
    store.ensure_tables().await.expect("tables upgraded");
    store
        .ensure_tables()
        .await
        .expect("and again: nothing to do");
    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("describe");
    let mut indexes: Vec<&str> = described
        .table()
        .expect("table")
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [GROUP_INDEX, USER_INDEX]);
    // Whole seconds: the expiry is stored as epoch seconds (the TTL attribute's format).
    let now = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).expect("now");
    let socket = AllGroupsSocket {
        connection_id: "upgraded".into(),
        user_id: UserId::new(7).expect("id"),
        connected_at: now,
        expires_at: now + chrono::Duration::hours(1),
    };
    let g = GroupId::new(3).expect("id");
    store
        .put_all_groups_socket(&socket, &[])
        .await
        .expect("put");
    let added = store.follow_group(socket.user_id, g).await.expect("follow");
    assert_eq!(added, [socket.subscription(g)]);
    assert_eq!(
        store.connections_for_group(g).await.expect("list"),
        [socket.subscription(g)]
    );
}
