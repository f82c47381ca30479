//! `GET /users/`: every user, in the original app's shape.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use shared::auth::reader;
use shared::context::AppContext;
use shared::http::{json, require_method};
use shared::ChatError;

pub async fn handle(ctx: &AppContext, request: Request) -> Result<Response<Body>, ChatError> {
    require_method(&request, &Method::GET)?;
    // Any signed-in user may see the directory; without a token only in trust-client mode.
    reader(&ctx.config.auth, &request, None)?;
    Ok(json(StatusCode::OK, &ctx.store.list_users().await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::StoreError;
    use shared::testing::{context, reply, request};

    #[tokio::test]
    async fn the_users_come_in_the_original_shape() {
        let t = context();
        let (status, body) = reply(handle(&t.ctx, request(Method::GET, &[], &[], None)).await);
        assert_eq!(status, 200);
        assert_eq!(
            body[1],
            serde_json::json!({"user_id": 2, "name": "Bob", "group_id": 1, "can_edit": true, "can_delete": true})
        );
        assert_eq!(body.as_array().map(Vec::len), Some(4));
    }

    #[tokio::test]
    async fn failures_are_json_errors() {
        let t = context();
        let (status, _) = reply(handle(&t.ctx, request(Method::POST, &[], &[], None)).await);
        assert_eq!(status, 405);
        t.store.fail_with(StoreError::Unavailable {
            op: "Query",
            cause: "down".into(),
        });
        let (status, body) = reply(handle(&t.ctx, request(Method::GET, &[], &[], None)).await);
        assert_eq!((status, body["error"].is_string()), (503, true));
    }

    #[tokio::test]
    async fn with_identity_the_directory_needs_a_token() {
        let t = shared::testing::jwt_context();
        let plain = request(Method::GET, &[], &[], None);
        assert_eq!(reply(handle(&t.ctx, plain).await).0, 401);
        let signed = shared::testing::signed_in(request(Method::GET, &[], &[], None), "2");
        assert_eq!(reply(handle(&t.ctx, signed).await).0, 200);
    }
}
