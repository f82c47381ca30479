//! The triggers over the in-memory store, with events in the shapes Cognito sends (AWS's
//! documentation of the post confirmation and pre token generation triggers).

use super::*;
use chat_core::store::{Directory, StoreError};
use chat_testkit::{Fallible, MemoryStore};

fn context() -> (Context, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::seeded());
    (
        Context {
            accounts: store.clone(),
        },
        store,
    )
}

fn event(trigger: &str, attributes: Value) -> Value {
    json!({
        "version": "1",
        "region": "us-east-1",
        "userPoolId": "us-east-1_example",
        "userName": "dana",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client"},
        "triggerSource": trigger,
        "request": {"userAttributes": attributes},
        "response": {}
    })
}

#[tokio::test]
async fn a_confirmed_account_becomes_a_user_and_its_tokens_name_it() {
    let (ctx, store) = context();
    let attributes = json!({"sub": "5f1e", "email": "dana@example.com", "name": "Dana"});
    let confirmed = event("PostConfirmation_ConfirmSignUp", attributes.clone());
    let answer = handle(&ctx, confirmed.clone()).await.expect("signed up");
    assert_eq!(
        answer, confirmed,
        "post confirmation answers its event unchanged"
    );
    let user_id = store
        .account_user("cognito:5f1e")
        .await
        .expect("get")
        .expect("signed up");
    let user = store.get_user(user_id).await.expect("get").expect("user");
    assert_eq!(user.name, "Dana");
    assert!(store
        .membership(user.group_id, user_id)
        .await
        .expect("get")
        .is_some());
    // A retry of the trigger makes no second user.
    handle(&ctx, confirmed).await.expect("again");
    assert_eq!(store.list_users().await.expect("users").len(), 5);

    for trigger in [
        "TokenGeneration_Authentication",
        "TokenGeneration_RefreshTokens",
    ] {
        let answer = handle(&ctx, event(trigger, attributes.clone()))
            .await
            .expect("token");
        assert_eq!(
            answer["response"]["claimsOverrideDetails"]["claimsToAddOrOverride"][USER_ID_CLAIM],
            user_id.to_string()
        );
    }
}

#[tokio::test]
async fn provisioned_and_unknown_accounts_and_other_triggers_are_left_alone() {
    let (ctx, store) = context();
    let provisioned = event(
        "PostConfirmation_ConfirmSignUp",
        json!({"sub": "a1", "custom:user_id": "1"}),
    );
    assert_eq!(handle(&ctx, provisioned.clone()).await, Ok(provisioned));
    let unknown = event("TokenGeneration_Authentication", json!({"sub": "nobody"}));
    assert_eq!(handle(&ctx, unknown.clone()).await, Ok(unknown));
    let other = event(
        "PostConfirmation_ConfirmForgotPassword",
        json!({"sub": "a2"}),
    );
    assert_eq!(handle(&ctx, other.clone()).await, Ok(other));
    assert_eq!(store.list_users().await.expect("users").len(), 4);
    let nameless = event("PostConfirmation_ConfirmSignUp", json!({}));
    assert_eq!(
        handle(&ctx, nameless).await.map_err(|e| e.status()),
        Err(400)
    );
}

#[tokio::test]
async fn a_store_failure_fails_the_trigger_so_cognito_retries_it() {
    let (ctx, store) = context();
    store.fail_with(StoreError::Unavailable {
        op: "GetItem",
        cause: "down".into(),
    });
    let confirmed = event(
        "PostConfirmation_ConfirmSignUp",
        json!({"sub": "s", "name": "S"}),
    );
    let err = handle(&ctx, confirmed).await.expect_err("fails");
    assert_eq!(err.status(), 503);
}
