//! The WebSocket API's `$connect` authorizer (a Lambda REQUEST authorizer). Browsers cannot set
//! headers on a WebSocket, so the token comes as `?token=`, the route's identity source. The
//! token is verified against the issuer's JWKS (fetched once per process, again on an unknown
//! `kid`); the user it names must belong to `?group_id=` when the socket names a group (without
//! one, the socket follows the user's own groups). The answer follows API Gateway's
//! contract: an `Unauthorized` error is a 401 (no valid token), a Deny policy a 403 (a valid
//! token, but not for this group), an Allow policy lets `$connect` run with the user id in the
//! authorizer context.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use std::sync::Arc;

use chat_auth::{KeySource, TokenError, Verifier};
use chat_core::config::{AuthConfig, Config};
use chat_core::domain::{GroupId, UserId};
use chat_core::guard::require_membership;
use chat_core::store::Directory;
use chat_lambda::identity::{
    user_from_claim, CONTEXT_TOKEN_EXPIRES_AT, CONTEXT_USER_ID, USER_ID_CLAIM,
};
use lambda_runtime::{service_fn, Error, LambdaEvent};

/// The error message API Gateway turns into a 401.
pub const UNAUTHORIZED: &str = "Unauthorized";

/// What the authorizer concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The socket may open, for this user, until the token expires (epoch seconds): `$connect`
    /// stores that as the socket's end, if sooner than API Gateway's two hours.
    Allow {
        user_id: UserId,
        token_expires_at: i64,
    },
    /// A genuine token that may not open this socket (why, for the log).
    Deny(String),
}

/// Why no decision could be made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No token, or one that does not verify: 401.
    #[error("Unauthorized")]
    Unauthorized(String),
    /// The issuer's keys or the directory could not be read: the connect fails (500), to be
    /// retried; nobody is let in unverified.
    #[error("cannot authorize now: {0}")]
    Unavailable(String),
}

/// What the function holds for its life: the directory, read only, and the token verifier
/// (which caches the issuer's keys).
pub struct Context {
    pub directory: Arc<dyn Directory>,
    pub verifier: Verifier,
}

impl Context {
    /// Over the DynamoDB store and the configured issuer.
    pub async fn from_config(config: Config) -> Result<Self, Error> {
        let verifier = verifier(&config.auth)?;
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        Ok(Self {
            directory: Arc::new(store),
            verifier,
        })
    }
}

/// Serves the authorizer.
pub async fn run(ctx: &'static Context) -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            let started = std::time::Instant::now();
            let arn = event.payload.method_arn.clone().unwrap_or_default();
            let decision = decide(ctx.directory.as_ref(), &ctx.verifier, &event.payload).await;
            chat_lambda::metrics::invocation_done(started.elapsed());
            match decision {
                Ok(decision) => Ok(policy(&arn, decision)),
                Err(Failure::Unauthorized(why)) => {
                    tracing::info!(why, "refused a socket: no valid token");
                    Err(Error::from(UNAUTHORIZED))
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot authorize a socket");
                    Err(Error::from(e.to_string()))
                }
            }
        },
    ))
    .await
}

/// The verifier for the configured issuer; both issuer and audience must be set.
pub fn verifier(auth: &AuthConfig) -> Result<Verifier, Error> {
    let (Some(issuer), Some(audience), Some(jwks)) =
        (&auth.issuer, &auth.audience, auth.jwks_url())
    else {
        return Err(Error::from(
            "ws-authorize needs AUTH_ISSUER and AUTH_AUDIENCE (and AUTH_JWKS_URL if the keys \
             are not at {issuer}/.well-known/jwks.json)",
        ));
    };
    chat_auth::require_https("AUTH_ISSUER", issuer).map_err(Error::from)?;
    let source = KeySource::url(&jwks).map_err(|e| Error::from(e.to_string()))?;
    Ok(Verifier::new(issuer, audience, source))
}

/// Verifies the request's token and the user's membership of the requested group.
pub async fn decide(
    directory: &dyn Directory,
    verifier: &Verifier,
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<Decision, Failure> {
    let query = &request.query_string_parameters;
    let token = query
        .first("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Failure::Unauthorized("no ?token=".into()))?;
    let claims = verifier.verify(token).await.map_err(|e| match e {
        TokenError::KeysUnavailable(_) => Failure::Unavailable(e.to_string()),
        other => Failure::Unauthorized(other.to_string()),
    })?;
    let user_id = match user_from_claim(claims.get(USER_ID_CLAIM).and_then(|v| v.as_str())) {
        Ok(user_id) => user_id,
        Err(e) => return Ok(Decision::Deny(e.public_message())),
    };
    // The verifier requires `exp`; a token without one never gets here.
    let Some(token_expires_at) = claims.get("exp").and_then(serde_json::Value::as_i64) else {
        return Err(Failure::Unauthorized("the token has no expiry".into()));
    };
    let allow = Decision::Allow {
        user_id,
        token_expires_at,
    };
    // No group named: the socket follows the user's own groups, whichever they are.
    let group_id: GroupId = match query.first("group_id").map(str::parse) {
        Some(Ok(group_id)) => group_id,
        Some(Err(_)) => return Ok(Decision::Deny("no valid ?group_id=".into())),
        None => return Ok(allow),
    };
    match require_membership(directory, user_id, group_id).await {
        Ok(_) => Ok(allow),
        Err(e) if e.is_server_error() => Err(Failure::Unavailable(e.to_string())),
        Err(e) => Ok(Decision::Deny(e.public_message())),
    }
}

/// The IAM policy API Gateway expects, for the route being connected (`method_arn`).
pub fn policy(method_arn: &str, decision: Decision) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.resource = vec![method_arn.to_owned()];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    match decision {
        Decision::Allow {
            user_id,
            token_expires_at,
        } => {
            statement.effect = IamPolicyEffect::Allow;
            response.principal_id = Some(user_id.to_string());
            response.context = serde_json::json!({
                CONTEXT_USER_ID: user_id.to_string(),
                CONTEXT_TOKEN_EXPIRES_AT: token_expires_at,
            });
        }
        Decision::Deny(why) => {
            tracing::info!(why, "refused a socket: not for this group");
            statement.effect = IamPolicyEffect::Deny;
            response.principal_id = Some("anonymous".into());
            response.context = serde_json::json!({});
        }
    }
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".into());
    document.statement = vec![statement];
    response.policy_document = document;
    response
}

#[cfg(test)]
mod tests;
