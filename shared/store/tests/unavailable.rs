//! What only DynamoDB can show: its failures. Its behaviour is the store's contract
//! (contract.rs).

use chat_core::domain::UserId;
use chat_core::store::Directory;

#[tokio::test]
async fn an_unreachable_dynamodb_is_reported_as_unavailable_in_bounded_time() {
    let config = chat_testkit::services::unreachable_config();
    let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
    let started = std::time::Instant::now();
    let err = store
        .get_user(UserId::new(1).expect("id"))
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(err, chat_core::store::StoreError::Unavailable { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let chat: chat_core::ChatError = err.into();
    assert_eq!(chat.status(), 503);
}
