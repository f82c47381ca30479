//! `GET /users/`: every user, in the original app's shape.

use std::convert::Infallible;
use std::sync::Arc;

use chat_core::config::{AuthConfig, Config};
use chat_core::store::Directory;
use chat_core::ChatError;
use chat_lambda::http::{json, require_method};
use chat_lambda::identity::reader;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

/// What the function holds for its life: the directory, read only.
pub struct Context {
    pub auth: AuthConfig,
    pub directory: Arc<dyn Directory>,
}

impl Context {
    /// Over the DynamoDB store.
    pub async fn from_config(config: Config) -> Result<Self, Infallible> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        Ok(Self::new(&config, Arc::new(store)))
    }

    pub fn new(config: &Config, directory: Arc<impl Directory + 'static>) -> Self {
        Self {
            auth: config.auth.clone(),
            directory,
        }
    }
}

pub async fn handle(ctx: &Context, request: Request) -> Result<Response<Body>, ChatError> {
    require_method(&request, &Method::GET)?;
    // Any signed-in user may see the directory; without a token only in trust-client mode.
    reader(&ctx.auth, &request, None)?;
    Ok(json(StatusCode::OK, &ctx.directory.list_users().await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::store::StoreError;
    use chat_testkit::requests::{reply, request, signed_in};
    use chat_testkit::{Fakes, Fallible};

    fn ctx(f: &Fakes) -> Context {
        Context::new(&f.config, f.store.clone())
    }

    #[tokio::test]
    async fn the_users_come_in_the_original_shape() {
        let f = Fakes::trust_client();
        let (status, body) = reply(handle(&ctx(&f), request(Method::GET, &[], &[], None)).await);
        assert_eq!(status, 200);
        assert_eq!(
            body[1],
            serde_json::json!({"user_id": 2, "name": "Bob", "group_id": 1, "can_edit": true, "can_delete": true})
        );
        assert_eq!(body.as_array().map(Vec::len), Some(4));
    }

    #[tokio::test]
    async fn failures_are_json_errors() {
        let f = Fakes::trust_client();
        let (status, _) = reply(handle(&ctx(&f), request(Method::POST, &[], &[], None)).await);
        assert_eq!(status, 405);
        f.store.fail_with(StoreError::Unavailable {
            op: "Query",
            cause: "down".into(),
        });
        let (status, body) = reply(handle(&ctx(&f), request(Method::GET, &[], &[], None)).await);
        assert_eq!((status, body["error"].is_string()), (503, true));
    }

    #[tokio::test]
    async fn with_identity_the_directory_needs_a_token() {
        let f = Fakes::jwt();
        let plain = request(Method::GET, &[], &[], None);
        assert_eq!(reply(handle(&ctx(&f), plain).await).0, 401);
        let signed = signed_in(request(Method::GET, &[], &[], None), "2");
        assert_eq!(reply(handle(&ctx(&f), signed).await).0, 200);
    }
}
