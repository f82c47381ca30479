//! `local-apigw`: the local stand-in for API Gateway, doing what AWS does and no more.
//! - The HTTP API: each request becomes the payload-2.0 event API Gateway would send, handed
//!   to the function through the Lambda Invoke API of `cargo lambda watch`; the function's
//!   reply becomes the response ([`http_api`]).
//! - The WebSocket API: `$connect` runs before the handshake completes and may refuse it,
//!   client frames go to `$default`, a closed socket to `$disconnect`, with API Gateway's limits
//!   ([`websocket`]). `ws://.../?group_id=` is AWS's shape; `ws://.../subscribe/{group_id}` is
//!   the one route AWS has no equivalent of, kept for the original app's clients.
//! - The Management API that functions push through, `/@connections/{id}` ([`management`]).
//!
//! Configuration: `APIGW_LISTEN` (default `127.0.0.1:8000`), `LAMBDA_INVOKE_URL` (default
//! `http://127.0.0.1:9000`).

mod http_api;
mod invoke;
mod management;
mod routes;
mod socket;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use invoke::Invoker;
use routes::{Route, WebSocketRoutes};

/// What every request handler shares.
pub struct Gateway {
    routes: Vec<Route>,
    websocket: WebSocketRoutes,
    sockets: websocket::Registry,
    invoker: Invoker,
}

#[tokio::main]
async fn main() {
    shared::lambda::init_logging();
    let listen = std::env::var("APIGW_LISTEN").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let invoke_url =
        std::env::var("LAMBDA_INVOKE_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("local-apigw: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let invoker = match Invoker::new(&invoke_url) {
        Ok(invoker) => invoker,
        Err(e) => {
            eprintln!("local-apigw: {e}");
            std::process::exit(1);
        }
    };
    let file = routes::route_file();
    let gateway = Arc::new(Gateway {
        routes: file.routes,
        websocket: file.websocket,
        sockets: websocket::Registry::default(),
        invoker,
    });
    tracing::info!(%listen, invoke = %invoke_url, "local API Gateway listening");
    let app = Router::new().fallback(route).with_state(gateway);
    if let Err(e) = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        eprintln!("local-apigw: {e}");
        std::process::exit(1);
    }
}

/// Every request: the Management API, a WebSocket handshake, or an HTTP API route.
async fn route(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8_lossy()
        .into_owned();
    if let Some((_, id)) = path.split_once("@connections/") {
        return management::handle(&gateway, request, id).await;
    }
    if is_websocket_upgrade(&request) {
        let (mut parts, _body) = request.into_parts();
        return match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await
        {
            Ok(upgrade) => websocket::connect(gateway, upgrade, &parts, peer).await,
            Err(rejection) => rejection.into_response(),
        };
    }
    http_api::handle(&gateway, request, peer).await
}

fn is_websocket_upgrade(request: &Request) -> bool {
    request.headers().get_all(header::UPGRADE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.eq_ignore_ascii_case("websocket"))
    })
}

/// `{"error": message}` with `status`, as every error of ours is answered.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let mut response =
        (status, serde_json::json!({ "error": message }).to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
