//! Identity at the gateway, as AWS does it:
//! - the HTTP API's JWT authorizer: a bearer token in `Authorization` verified against the
//!   issuer's keys (RSA only, `iss`, `aud`/`client_id`, `exp`, `nbf`), refused with API
//!   Gateway's own 401 (`{"message":"Unauthorized"}`), its claims handed to the function;
//! - the WebSocket `$connect` REQUEST authorizer: `ws-authorize` is invoked with `?token=` and
//!   `?group_id=`; no token is a 401 without invoking it, its `Unauthorized` error a 401, a Deny
//!   a 403, an Allow lets `$connect` run with the authorizer's context;
//!
//! The Management API's signatures and permissions are checked by `local-iam`, see
//! [`crate::management`].

use std::collections::HashMap;
use std::path::PathBuf;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerRequestTypeRequestContext, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::IamPolicyEffect;
use aws_lambda_events::query_map::QueryMap;
use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::Response;
use chat_auth::{flatten_claims, KeySource, TokenError, Verifier, JWKS_FILE};
use serde_json::Value;

use crate::invoke::Invoker;
use crate::reply::{json_error, message};
use crate::socket::SocketInfo;

/// The issuer the gateway trusts: the local one, or one whose keys are at a URL (a user pool).
pub struct Auth {
    pub verifier: Verifier,
    /// The local issuer's keys, served at `/auth/.well-known/jwks.json`; `None` for another
    /// issuer.
    pub jwks_file: Option<PathBuf>,
}

impl Auth {
    /// From `AUTH_ISSUER`, `AUTH_AUDIENCE`, and `AUTH_JWKS_URL` (another issuer's keys, such as
    /// a Cognito user pool's) or `AUTH_KEY_DIR` (where `chatctl` keeps the local issuer's).
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("{name} must be set to verify tokens (AUTH_MODE=jwt)"))
        };
        let (issuer, audience) = (var("AUTH_ISSUER")?, var("AUTH_AUDIENCE")?);
        chat_auth::require_https("AUTH_ISSUER", &issuer)?;
        if let Ok(url) = var("AUTH_JWKS_URL") {
            let keys = KeySource::url(&url).map_err(|e| e.to_string())?;
            return Ok(Self {
                verifier: Verifier::new(&issuer, &audience, keys),
                jwks_file: None,
            });
        }
        let jwks_file = PathBuf::from(var("AUTH_KEY_DIR")?).join(JWKS_FILE);
        Ok(Self {
            verifier: Verifier::new(&issuer, &audience, KeySource::File(jwks_file.clone())),
            jwks_file: Some(jwks_file),
        })
    }

    /// The local issuer's public keys, as Cognito serves them at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Response {
        let Some(file) = &self.jwks_file else {
            return json_error(StatusCode::NOT_FOUND, "no keys of this issuer here");
        };
        match std::fs::read(file) {
            Ok(bytes) => {
                let mut response = Response::new(Body::from(bytes));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(_) => json_error(StatusCode::NOT_FOUND, "no keys"),
        }
    }

    /// The claims of the request's bearer token, flattened to strings as API Gateway passes
    /// them, or API Gateway's 401.
    pub async fn bearer(&self, headers: &HeaderMap) -> Result<HashMap<String, String>, Response> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(unauthorized(None));
        };
        // API Gateway takes the token with or without the `Bearer` scheme.
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim();
        match self.verifier.verify(token).await {
            Ok(claims) => Ok(flatten_claims(&claims)),
            Err(e @ TokenError::KeysUnavailable(_)) => {
                tracing::error!(error = %e, "cannot verify tokens");
                Err(json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                ))
            }
            Err(e) => Err(unauthorized(Some(&e))),
        }
    }
}

/// API Gateway's answer to a missing or invalid token: its body, and the reason in
/// `WWW-Authenticate` as AWS gives it.
pub fn unauthorized(why: Option<&TokenError>) -> Response {
    let mut response = message(StatusCode::UNAUTHORIZED, "Unauthorized");
    let challenge = match why {
        None => "Bearer".to_owned(),
        Some(e) => format!(
            "Bearer error=\"invalid_token\" error_description=\"{}\"",
            e.to_string().replace('"', "'")
        ),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Runs the `$connect` authorizer for a handshake: its context (`principalId` and what it
/// returned), or the refusal to answer the handshake with.
pub async fn authorize_connect(
    invoker: &Invoker,
    function: &str,
    info: &SocketInfo,
) -> Result<HashMap<String, Value>, Response> {
    let has_token = info
        .query
        .iter()
        .any(|(k, v)| k == "token" && !v.is_empty());
    if !has_token {
        // The identity source is missing: API Gateway refuses without calling the authorizer.
        return Err(unauthorized(None));
    }
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in &info.query {
        query.entry(k.clone()).or_default().push(v.clone());
    }
    let mut context = ApiGatewayCustomAuthorizerRequestTypeRequestContext::default();
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.stage = Some("local".into());
    let mut event = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
    event.type_ = Some("REQUEST".into());
    event.method_arn = Some("arn:aws:execute-api:local:000000000000:local/local/$connect".into());
    event.headers = info.headers.clone();
    event.query_string_parameters = QueryMap::from(query.clone());
    event.multi_value_query_string_parameters = QueryMap::from(query);
    event.request_context = context;
    let reply: ApiGatewayCustomAuthorizerResponse = match invoker.call(function, &event).await {
        Err(failure) => return Err(failure),
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) if error == "Unauthorized" => return Err(unauthorized(None)),
        Ok(Err(error)) => {
            tracing::error!(function, %error, "the authorizer failed");
            return Err(message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ));
        }
    };
    let allowed = !reply.policy_document.statement.is_empty()
        && reply
            .policy_document
            .statement
            .iter()
            .all(|s| s.effect == IamPolicyEffect::Allow);
    if !allowed {
        return Err(message(StatusCode::FORBIDDEN, "Forbidden"));
    }
    let mut fields: HashMap<String, Value> = match reply.context {
        Value::Object(map) => map.into_iter().collect(),
        _ => HashMap::new(),
    };
    if let Some(principal) = reply.principal_id {
        fields.insert("principalId".into(), Value::String(principal));
    }
    Ok(fields)
}
