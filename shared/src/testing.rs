//! Building blocks for unit tests of the HTTP handlers: a context over in-memory fakes and
//! requests shaped as API Gateway delivers them. Not for integration tests, which use the
//! real services.

use std::collections::HashMap;
use std::sync::Arc;

use lambda_http::http::{self, Method};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::config::Config;
use crate::context::AppContext;
use crate::publish::MemoryPublisher;
use crate::store::memory::MemoryStore;

/// Makes a fake fail on demand: every call fails with the error set, until it is cleared.
pub struct FailSwitch<E>(std::sync::Mutex<Option<E>>);

impl<E> Default for FailSwitch<E> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(None))
    }
}

impl<E: Clone> FailSwitch<E> {
    /// From now on every call fails with `error` (`None`: they succeed again).
    pub fn set(&self, error: Option<E>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// The error a call must fail with now, if any.
    pub fn check(&self) -> Result<(), E> {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A context over the seeded in-memory store and a recording publisher.
pub struct TestContext {
    pub ctx: AppContext,
    pub store: Arc<MemoryStore>,
    pub publisher: Arc<MemoryPublisher>,
}

/// A context in `trust-client` mode, where requests in the original app's shape (no token)
/// name their user; see [`jwt_context`] for the mode the template deploys.
pub fn context() -> TestContext {
    context_in("trust-client")
}

/// A context in `jwt` mode: only requests with claims ([`signed_in`]) have a caller.
pub fn jwt_context() -> TestContext {
    context_in("jwt")
}

fn context_in(mode: &'static str) -> TestContext {
    let store = Arc::new(MemoryStore::seeded());
    let publisher = Arc::new(MemoryPublisher::new());
    let config = Config::from_lookup(|name| (name == "AUTH_MODE").then(|| mode.to_owned()))
        .unwrap_or_else(|e| panic!("{e}"));
    TestContext {
        ctx: AppContext {
            config: Arc::new(config),
            store: store.clone(),
            publisher: publisher.clone(),
            known_users: Arc::default(),
        },
        store,
        publisher,
    }
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
    jwt.claims
        .insert(crate::auth::USER_ID_CLAIM.to_owned(), claim.to_owned());
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
pub fn reply(result: Result<Response<Body>, crate::ChatError>) -> (u16, serde_json::Value) {
    parts(&crate::http::reply(result))
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
pub async fn seed_messages(store: &dyn crate::store::Store) {
    for user in crate::domain::seed_users() {
        let message = crate::domain::Message {
            id: crate::domain::MessageId::new(i128::from(user.user_id.get() * 10))
                .unwrap_or_else(|e| panic!("{e}")),
            user_id: user.user_id,
            name: user.name.clone(),
            group_id: user.group_id,
            message: crate::domain::MessageText::new("original").unwrap_or_else(|e| panic!("{e}")),
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
