//! Sign-up without an administrator, as two triggers of the Cognito user pool:
//! - post confirmation (`PostConfirmation_ConfirmSignUp`): the confirmed account becomes a
//!   chat user with a group of their own (`chat_core::signup`), once however often Cognito
//!   retries;
//! - pre token generation (`TokenGeneration_*`): the ID token gets the account's chat user id
//!   as `custom:user_id`, the claim the API takes the caller from.
//!
//! An account an administrator gave a `custom:user_id` keeps it: both triggers leave it alone.
//! Users cannot write that attribute (the app client's write attributes), so the claim is
//! ours. Every other trigger is answered unchanged. The answer is the event, with the pre
//! token trigger's `response.claimsOverrideDetails` filled in.

use std::convert::Infallible;
use std::sync::Arc;

use chat_core::config::Config;
use chat_core::domain::USER_ID_CLAIM;
use chat_core::signup::sign_up;
use chat_core::store::Accounts;
use chat_core::ChatError;
use serde_json::{json, Value};

/// What the function holds for its life: the accounts (and, through them, the directory).
pub struct Context {
    pub accounts: Arc<dyn Accounts>,
}

impl Context {
    /// Over the DynamoDB store.
    pub async fn from_config(config: Config) -> Result<Self, Infallible> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        Ok(Self {
            accounts: Arc::new(store),
        })
    }
}

/// The account a Cognito user is, by its immutable `sub`.
pub fn cognito_account(sub: &str) -> String {
    format!("cognito:{sub}")
}

pub async fn handle(ctx: &Context, mut event: Value) -> Result<Value, ChatError> {
    let trigger = event["triggerSource"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let attributes = &event["request"]["userAttributes"];
    if attributes.get(USER_ID_CLAIM).is_some() {
        return Ok(event);
    }
    let Some(sub) = attributes["sub"].as_str().map(cognito_account) else {
        return Err(ChatError::BadRequest(format!(
            "{trigger}: the event names no user (request.userAttributes.sub)"
        )));
    };
    if trigger == "PostConfirmation_ConfirmSignUp" {
        let name = ["name", "preferred_username", "email"]
            .iter()
            .find_map(|a| attributes[a].as_str())
            .or_else(|| event["userName"].as_str())
            .unwrap_or("new user")
            .to_owned();
        let user_id = sign_up(ctx.accounts.as_ref(), &sub, &name).await?;
        tracing::info!(user_id = user_id.get(), "signed up");
    } else if trigger.starts_with("TokenGeneration_") {
        if let Some(user_id) = ctx.accounts.account_user(&sub).await? {
            event["response"]["claimsOverrideDetails"] = json!({
                "claimsToAddOrOverride": { USER_ID_CLAIM: user_id.to_string() }
            });
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests;
