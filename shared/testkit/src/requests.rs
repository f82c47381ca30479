//! Building blocks for unit tests of the handlers: the fakes, a configuration per mode, and
//! requests shaped as API Gateway delivers them. Not for integration tests, which use the
//! real services.

use std::collections::HashMap;
use std::sync::Arc;

use lambda_http::http::{self, Method};
use lambda_http::{Body, Request, RequestExt, Response};

use chat_core::config::Config;
use chat_core::store::MessageWriter;

use crate::{MemoryPublisher, MemoryStore};

/// The configuration of a unit test: `trust-client` mode, where requests in the original
/// app's shape (no token) name their user; see [`jwt_config`] for the mode the template deploys.
pub fn config() -> Config {
    config_in("trust-client")
}

/// `jwt` mode: only requests with claims ([`signed_in`]) have a caller.
pub fn jwt_config() -> Config {
    config_in("jwt")
}

fn config_in(mode: &'static str) -> Config {
    Config::from_lookup(|name| (name == "AUTH_MODE").then(|| mode.to_owned()))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The fakes a handler's unit test runs on: a seeded in-memory store and a recording
/// publisher, with the configuration of one mode. Each function makes its context of them.
pub struct Fakes {
    pub config: Config,
    pub store: Arc<MemoryStore>,
    pub publisher: Arc<MemoryPublisher>,
}

impl Fakes {
    /// In `trust-client` mode (see [`config`]).
    pub fn trust_client() -> Self {
        Self::in_mode(config())
    }

    /// In `jwt` mode (see [`jwt_config`]).
    pub fn jwt() -> Self {
        Self::in_mode(jwt_config())
    }

    fn in_mode(config: Config) -> Self {
        Self {
            config,
            store: Arc::new(MemoryStore::seeded()),
            publisher: Arc::new(MemoryPublisher::new()),
        }
    }

    /// A function's context made over these fakes by `build`, the fakes kept beside it.
    pub fn with<C>(self, build: impl FnOnce(&Fakes) -> C) -> TestContext<C> {
        let ctx = build(&self);
        TestContext {
            ctx,
            config: self.config,
            store: self.store,
            publisher: self.publisher,
        }
    }
}

/// A function's context over fakes, and the fakes, to look at or make fail.
pub struct TestContext<C> {
    pub ctx: C,
    pub config: Config,
    pub store: Arc<MemoryStore>,
    pub publisher: Arc<MemoryPublisher>,
}

/// A request with path parameters, query parameters and an optional JSON body.
pub fn request(
    method: Method,
    path: &[(&str, &str)],
    query: &[(&str, &str)],
    body: Option<&str>,
) -> Request {
    let mut builder = http::Request::builder().method(method).uri("/");
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let body = body.map_or(Body::Empty, |b| Body::Text(b.to_owned()));
    let to_map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    builder
        .body(body)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_path_parameters(to_map(path))
        .with_query_string_parameters(to_map(query))
}

/// `request` as API Gateway's JWT authorizer passes it on: with the verified token's claims,
/// here only the user-id claim (`claim`, as the token carries it).
pub fn signed_in(request: Request, claim: &str) -> Request {
    use aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
        ApiGatewayV2httpRequestContext,
    };
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims.insert(
        chat_lambda::identity::USER_ID_CLAIM.to_owned(),
        claim.to_owned(),
    );
    jwt.claims
        .insert("iss".into(), "https://issuer.test".into());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.authorizer = Some(authorizer);
    request.with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(context))
}

/// `request` signed in as `claim`'s user, or as it is when `claim` is `None`.
pub fn maybe_signed_in(request: Request, claim: Option<&str>) -> Request {
    match claim {
        Some(claim) => signed_in(request, claim),
        None => request,
    }
}

/// The status and JSON body a handler's result is answered with.
pub fn reply(result: Result<Response<Body>, chat_core::ChatError>) -> (u16, serde_json::Value) {
    parts(&chat_lambda::http::reply(result))
}

/// A WebSocket route event as API Gateway sends it: `route` is `$connect`, `$disconnect` or
/// `$default`; `query` the query string parameters (`$connect` only).
pub fn ws_event(
    route: &str,
    connection_id: Option<&str>,
    query: serde_json::Value,
) -> aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest {
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    serde_json::from_value(serde_json::json!({
        "headers": {"Host": "localhost:8000"},
        "queryStringParameters": query,
        "requestContext": {
            "routeKey": route, "eventType": event_type, "connectionId": connection_id,
            "domainName": "localhost", "stage": "local", "apiId": "local",
            "connectedAt": 0, "requestTimeEpoch": 0, "requestId": "r", "messageId": null
        },
        "isBase64Encoded": false
    }))
    .unwrap_or_else(|e| panic!("a WebSocket event: {e}"))
}

/// The status and JSON body of a reply.
pub fn parts(response: &Response<Body>) -> (u16, serde_json::Value) {
    let text = match response.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (response.status().as_u16(), json)
}

/// Stores message `10 × user_id` by each seed user in the user's group.
pub async fn seed_messages(store: &dyn MessageWriter) {
    for user in chat_core::compat::seed_users() {
        let message = chat_core::domain::Message {
            id: chat_core::domain::MessageId::new(i128::from(user.user_id.get() * 10))
                .unwrap_or_else(|e| panic!("{e}")),
            user_id: user.user_id,
            name: user.name.clone(),
            group_id: user.group_id,
            message: chat_core::domain::MessageText::new("original")
                .unwrap_or_else(|e| panic!("{e}")),
            can_edit: user.can_edit,
            can_delete: user.can_delete,
            created_at: chrono::Utc::now(),
            edited_at: None,
        };
        store
            .insert_message(&message)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
