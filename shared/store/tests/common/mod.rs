//! What the store's integration tests share: a store over tables of their own.

use chat_store::DynamoStore;
use chat_testkit::services::{config, with_own_tables};

/// A store over tables of its own, created for this test, in the DynamoDB Local of
/// `make test` (a panic says what to start when it is not there).
pub async fn own_store() -> DynamoStore {
    let config = with_own_tables(config());
    let store = DynamoStore::from_config(&config.dynamodb).await;
    store.ensure_tables().await.expect("tables created");
    store
}
