//! Who is calling. On AWS the caller is never what a request says: API Gateway's JWT
//! authorizer verifies the bearer token of every HTTP request and hands the function its
//! claims, and `ws-authorize` verifies a socket's `?token=` and hands `$connect` the user id.
//! Functions read the caller from there ([`acting_user`], [`reader`], [`connecting_user`]).
//!
//! `user_id` in a body or query stays accepted, for the original app's clients: with a
//! verified caller it must name that caller (else 403); in `trust-client` mode (local
//! development only) and without claims, it is believed, as the original app believed it.
//!
//! `chat-auth` verifies tokens (the local API Gateway and `ws-authorize`) and issues them
//! locally.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use chat_core::config::{AuthConfig, AuthMode};
use chat_core::domain::UserId;
use chat_core::error::ChatError;

pub use chat_core::domain::USER_ID_CLAIM;
/// The key under which `ws-authorize` passes the verified user id to `$connect`.
pub const CONTEXT_USER_ID: &str = "user_id";
/// The key under which `ws-authorize` passes the token's expiry (epoch seconds) to `$connect`.
pub const CONTEXT_TOKEN_EXPIRES_AT: &str = "token_expires_at";

/// The user a verified token names, if the request carries the claims of one.
pub fn claimed_user(request: &Request) -> Result<Option<UserId>, ChatError> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return Ok(None);
    };
    let Some(jwt) = context.authorizer.as_ref().and_then(|a| a.jwt.as_ref()) else {
        return Ok(None);
    };
    user_from_claim(jwt.claims.get(USER_ID_CLAIM).map(String::as_str)).map(Some)
}

/// A verified token's user-id claim, or 403: the token is genuine but names no chat user.
pub fn user_from_claim(claim: Option<&str>) -> Result<UserId, ChatError> {
    let claim = claim
        .ok_or_else(|| ChatError::Forbidden(format!("the token has no {USER_ID_CLAIM} claim")))?;
    claim
        .trim()
        .parse()
        .map_err(|_| ChatError::Forbidden(format!("the token's {USER_ID_CLAIM} is not a user id")))
}

/// Who a request acts as (send, edit, delete): the verified caller, or, in `trust-client`
/// mode without claims, the `user_id` it names.
pub fn acting_user(
    auth: &AuthConfig,
    request: &Request,
    named: Option<UserId>,
) -> Result<UserId, ChatError> {
    reader(auth, request, named)?.ok_or_else(|| {
        ChatError::BadRequest(
            "user_id is required (query parameter or JSON body), or sign in with a token".into(),
        )
    })
}

/// Who reads: the verified caller; in `trust-client` mode without claims the `user_id` named,
/// or nobody (the original app's open read). Membership is the caller's to check.
pub fn reader(
    auth: &AuthConfig,
    request: &Request,
    named: Option<UserId>,
) -> Result<Option<UserId>, ChatError> {
    resolve(auth.mode, claimed_user(request)?, named)
}

/// Who opens a socket: the user `ws-authorize` verified (its context reaches `$connect`), or
/// in `trust-client` mode without one the `?user_id=` named, if any.
pub fn connecting_user(
    auth: &AuthConfig,
    request: &ApiGatewayWebsocketProxyRequest,
) -> Result<Option<UserId>, ChatError> {
    let verified = request
        .request_context
        .authorizer
        .fields
        .get(CONTEXT_USER_ID)
        .map(|value| match value {
            serde_json::Value::String(s) => user_from_claim(Some(s)),
            other => user_from_claim(Some(&other.to_string())),
        })
        .transpose()?;
    let named = request
        .query_string_parameters
        .first("user_id")
        .map(str::parse::<UserId>)
        .transpose()?;
    resolve(auth.mode, verified, named)
}

/// When the token that opened the socket expires, as `ws-authorize` passed it on (`None`
/// without one: trust-client mode). A number, or its text (API Gateway may pass either).
pub fn token_expiry(request: &ApiGatewayWebsocketProxyRequest) -> Option<DateTime<Utc>> {
    let value = request
        .request_context
        .authorizer
        .fields
        .get(CONTEXT_TOKEN_EXPIRES_AT)?;
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }?;
    DateTime::from_timestamp(seconds, 0)
}

fn resolve(
    mode: AuthMode,
    verified: Option<UserId>,
    named: Option<UserId>,
) -> Result<Option<UserId>, ChatError> {
    match (verified, named) {
        (Some(caller), Some(named)) if caller != named => Err(ChatError::Forbidden(format!(
            "user_id {named} is not the signed-in user"
        ))),
        (Some(caller), _) => Ok(Some(caller)),
        (None, _) if mode == AuthMode::Jwt => Err(ChatError::Unauthorized(
            "sign in: this request needs a valid bearer token".into(),
        )),
        (None, named) => Ok(named),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_testkit::requests::{request, signed_in, ws_event};
    use lambda_http::http::Method;

    fn auth(mode: AuthMode) -> AuthConfig {
        AuthConfig {
            mode,
            issuer: None,
            audience: None,
            jwks_url: None,
            max_sockets_per_user: 5,
        }
    }

    fn id(n: i128) -> UserId {
        UserId::new(n).expect("id")
    }

    #[test]
    fn a_verified_caller_is_who_acts_and_may_not_name_anyone_else() {
        for mode in [AuthMode::Jwt, AuthMode::TrustClient] {
            let r = signed_in(request(Method::POST, &[], &[], None), "3");
            assert_eq!(acting_user(&auth(mode), &r, None), Ok(id(3)));
            assert_eq!(acting_user(&auth(mode), &r, Some(id(3))), Ok(id(3)));
            let err = acting_user(&auth(mode), &r, Some(id(1))).expect_err("impersonation");
            assert_eq!(err.status(), 403);
        }
    }

    #[test]
    fn without_claims_jwt_mode_refuses_and_trust_client_believes_the_request() {
        let r = request(Method::POST, &[], &[], None);
        let err = acting_user(&auth(AuthMode::Jwt), &r, Some(id(1))).expect_err("no token");
        assert_eq!(err.status(), 401);
        assert_eq!(
            reader(&auth(AuthMode::Jwt), &r, None).map_err(|e| e.status()),
            Err(401)
        );
        let trusting = auth(AuthMode::TrustClient);
        assert_eq!(acting_user(&trusting, &r, Some(id(1))), Ok(id(1)));
        assert_eq!(
            acting_user(&trusting, &r, None).map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(reader(&trusting, &r, None), Ok(None));
    }

    #[test]
    fn a_token_without_a_usable_user_claim_is_forbidden() {
        for claim in ["", "abc", "0", "-4", "1.5"] {
            let r = signed_in(request(Method::GET, &[], &[], None), claim);
            let err = reader(&auth(AuthMode::TrustClient), &r, None).expect_err(claim);
            assert_eq!(err.status(), 403, "{claim:?}");
        }
    }

    #[test]
    fn a_socket_takes_its_user_from_the_authorizer_context() {
        let mut event = ws_event("$connect", Some("c"), serde_json::json!({"group_id": "1"}));
        let jwt = auth(AuthMode::Jwt);
        assert_eq!(
            connecting_user(&jwt, &event).map_err(|e| e.status()),
            Err(401)
        );
        assert_eq!(
            connecting_user(&auth(AuthMode::TrustClient), &event),
            Ok(None)
        );
        event
            .request_context
            .authorizer
            .fields
            .insert(CONTEXT_USER_ID.into(), serde_json::json!("2"));
        assert_eq!(connecting_user(&jwt, &event), Ok(Some(id(2))));
        event.query_string_parameters = [("user_id".to_owned(), "1".to_owned())]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>()
            .into();
        assert_eq!(
            connecting_user(&jwt, &event).map_err(|e| e.status()),
            Err(403)
        );
    }
}
