//! `local-apigw`: the local stand-in for API Gateway, doing what AWS does and no more, as a
//! library: [`app`] is the whole gateway as an axum router (tests call it in process), the
//! binary serves it.
//! - The HTTP API: each request becomes the payload-2.0 event API Gateway would send, handed
//!   to the function through the Lambda Invoke API of `cargo lambda watch`; the function's
//!   reply becomes the response ([`http_api`]).
//! - The WebSocket API: `$connect` runs before the handshake completes and may refuse it,
//!   client frames go to the route their `action` selects (`typing`; others are dropped, as by
//!   the deployed MOCK `$default`), a closed socket to `$disconnect`, with API Gateway's limits
//!   ([`websocket`]). `ws://.../?group_id=` is AWS's shape (without `group_id`, a socket that
//!   follows all its user's groups); `ws://.../subscribe/{group_id}` and `ws://.../subscribe`
//!   are the routes AWS has no equivalent of, kept for the original app's clients' URLs.
//! - The Management API that functions push through, `/{stage}/@connections/{id}`
//!   ([`management`]): each call's SigV4 signature is verified and its
//!   `execute-api:ManageConnections` checked against the caller's policies in the template, as
//!   IAM does on AWS (`local-iam`).
//! - Identity ([`auth`]): with `AUTH_MODE=jwt` (the default) the HTTP API verifies bearer
//!   tokens as AWS's JWT authorizer does and `$connect` runs the `ws-authorize` function; with
//!   `AUTH_MODE=trust-client` neither happens and the functions believe the requests' `user_id`
//!   (the original app's clients, local development only). `APIGW_JWT_LISTEN` adds a second
//!   address that always verifies, sharing the sockets (tests use both modes on one stack).
//!
//! - The chat page and the API's descriptions, on the API's origin ([`web`]).
//!
//! Configuration: `APIGW_LISTEN` (default `127.0.0.1:8000`), `LAMBDA_INVOKE_URL` (default
//! `http://127.0.0.1:9000`), `AUTH_MODE`, `APIGW_JWT_LISTEN`, and for verifying tokens
//! `AUTH_ISSUER`, `AUTH_AUDIENCE`, `AUTH_KEY_DIR` (the local issuer's keys, made by `chatctl`),
//! `APIGW_WEB_ROOT` (the checkout whose `web/` and `docs/` are served), `LOCAL_IAM_TEMPLATE`
//! (the expanded template whose policies the Management API enforces) and `LOCAL_IAM`.

mod auth;
pub mod gateway;
mod headers;
mod http_api;
mod invoke;
mod management;
pub mod reply;
pub mod routes;
mod socket;
mod web;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

pub use gateway::Gateway;

/// One listening address: the gateway, and whether it verifies identity there.
#[derive(Clone)]
struct Front {
    gateway: Arc<Gateway>,
    verify: bool,
}

/// Whether a listening address (`host:port`) is reachable from this machine only.
pub fn is_loopback(listen: &str) -> bool {
    chat_auth::is_loopback_host(listen.rsplit_once(':').map_or(listen, |(host, _)| host))
}

/// The gateway as a router, verifying identity (`verify`) or not: the fixed paths of API
/// Gateway (the Management API, the local issuer's keys, the WebSocket API) as routes of their
/// own, and everything else through the one matcher of `routes.json`, then the chat page.
/// Every response carries the security headers CloudFront adds on AWS. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn app(gateway: Arc<Gateway>, verify: bool) -> Router {
    let headers = gateway.clone();
    Router::new()
        .route("/{stage}/@connections/{id}", any(management_api))
        .route("/auth/.well-known/jwks.json", get(jwks))
        .route("/", any(websocket_or_http))
        .route("/subscribe", any(websocket_or_http))
        .route("/subscribe/{group_id}", any(websocket_or_http))
        .fallback(http_api)
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                let headers = headers.clone();
                async move {
                    for (name, value) in &headers.security_headers {
                        response.headers_mut().insert(name.clone(), value.clone());
                    }
                    response
                }
            },
        ))
        .with_state(Front { gateway, verify })
}

async fn management_api(
    State(Front { gateway, .. }): State<Front>,
    Path((stage, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    management::handle(&gateway, request, &stage, &id).await
}

/// The local issuer's keys, where its tokens say they are (`{issuer}/.well-known/jwks.json`).
async fn jwks(State(Front { gateway, .. }): State<Front>) -> Response {
    match &gateway.auth {
        Some(auth) => auth.jwks(),
        None => reply::json_error(StatusCode::NOT_FOUND, "no keys of an issuer here"),
    }
}

/// `/`, `/subscribe` and `/subscribe/{group_id}`: a WebSocket handshake, or else an HTTP request like any.
async fn websocket_or_http(
    State(front): State<Front>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if !is_websocket_upgrade(&request) {
        return http_api(State(front), ConnectInfo(peer), request).await;
    }
    let (mut parts, _body) = request.into_parts();
    match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => websocket::connect(front.gateway, upgrade, &parts, peer, front.verify).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// A route of `routes.json`, or a file of the chat page, or 404.
async fn http_api(
    State(Front { gateway, verify }): State<Front>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    http_api::handle(&gateway, request, peer, verify).await
}

fn is_websocket_upgrade(request: &Request) -> bool {
    request.headers().get_all(header::UPGRADE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.eq_ignore_ascii_case("websocket"))
    })
}
