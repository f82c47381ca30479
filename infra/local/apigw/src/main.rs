//! `local-apigw`: the local stand-in for API Gateway, doing what AWS does and no more.
//! - The HTTP API: each request becomes the payload-2.0 event API Gateway would send, handed
//!   to the function through the Lambda Invoke API of `cargo lambda watch`; the function's
//!   reply becomes the response ([`http_api`]).
//! - The WebSocket API: `$connect` runs before the handshake completes and may refuse it,
//!   client frames go to `$default`, a closed socket to `$disconnect`, with API Gateway's limits
//!   ([`websocket`]). `ws://.../?group_id=` is AWS's shape; `ws://.../subscribe/{group_id}` is
//!   the one route AWS has no equivalent of, kept for the original app's clients.
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
mod headers;
mod http_api;
mod invoke;
mod management;
mod routes;
mod socket;
mod web;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;

use invoke::Invoker;
use routes::{Route, WebSocketRoutes};

/// What every request handler shares.
pub struct Gateway {
    routes: Vec<Route>,
    websocket: WebSocketRoutes,
    sockets: websocket::Registry,
    invoker: Invoker,
    /// The function run as the `$connect` authorizer.
    websocket_authorizer: String,
    /// The issuer tokens are verified against, when some address verifies them.
    auth: Option<auth::Auth>,
    /// The checkout whose chat page and API descriptions are served ([`web`]).
    web_root: std::path::PathBuf,
    /// The functions' permissions, for the Management API.
    iam: local_iam::Iam,
    /// The WebSocket API's stage: the Management API is at `/{stage}/@connections/`.
    stage: String,
    /// The security headers of every response, as CloudFront's policy adds them on AWS.
    security_headers: Vec<(axum::http::HeaderName, HeaderValue)>,
}

/// One listening address: the gateway, and whether it verifies identity there.
#[derive(Clone)]
struct Front {
    gateway: Arc<Gateway>,
    verify: bool,
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
    let verify = match std::env::var("AUTH_MODE").as_deref() {
        Ok("jwt") | Err(_) => true,
        Ok("trust-client") => false,
        Ok(other) => {
            eprintln!("local-apigw: AUTH_MODE is `{other}`; use `jwt` or `trust-client`");
            std::process::exit(1);
        }
    };
    let jwt_listen = std::env::var("APIGW_JWT_LISTEN")
        .ok()
        .filter(|v| !v.is_empty());
    let auth = if verify || jwt_listen.is_some() {
        match auth::Auth::from_env() {
            Ok(auth) => Some(auth),
            Err(e) => {
                eprintln!("local-apigw: {e}");
                std::process::exit(1);
            }
        }
    } else {
        tracing::warn!(
            "AUTH_MODE=trust-client: identity is NOT verified; any request may act as any \
             user. For local development only."
        );
        None
    };
    let template_path = std::env::var("LOCAL_IAM_TEMPLATE").unwrap_or_default();
    let security_headers = std::fs::read_to_string(&template_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .and_then(|expanded| headers::from_template(&expanded))
        .unwrap_or_else(|e| {
            eprintln!("local-apigw: the security headers of {template_path}: {e}");
            std::process::exit(1);
        });
    let iam = match std::env::var("LOCAL_IAM_TEMPLATE") {
        Ok(path) => {
            let mode = local_iam::Mode::from_env().unwrap_or_else(|e| {
                eprintln!("local-apigw: {e}");
                std::process::exit(1);
            });
            local_iam::Iam::load(
                std::path::Path::new(&path),
                local_iam::template::Locals::from_env(),
                mode,
            )
            .unwrap_or_else(|e| {
                eprintln!("local-apigw: {e}");
                std::process::exit(1);
            })
        }
        Err(_) => {
            eprintln!("local-apigw: LOCAL_IAM_TEMPLATE must name the expanded template (infra/local/stack.sh sets it)");
            std::process::exit(1);
        }
    };
    let stage = iam
        .parameter("WebSocketStageName")
        .unwrap_or("live")
        .to_owned();
    let file = routes::route_file();
    let gateway = Arc::new(Gateway {
        routes: file.routes,
        websocket: file.websocket,
        sockets: websocket::Registry::default(),
        invoker,
        websocket_authorizer: file.websocket_authorizer,
        auth,
        web_root: web::root(),
        iam,
        stage,
        security_headers,
    });
    tracing::info!(%listen, invoke = %invoke_url, verify, "local API Gateway listening");
    let mut servers = vec![tokio::spawn(serve(listener, gateway.clone(), verify))];
    if let Some(jwt_listen) = jwt_listen {
        let listener = match tokio::net::TcpListener::bind(&jwt_listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("local-apigw: cannot listen on {jwt_listen}: {e}");
                std::process::exit(1);
            }
        };
        tracing::info!(listen = %jwt_listen, "verifying tokens on a second address");
        servers.push(tokio::spawn(serve(listener, gateway, true)));
    }
    for server in servers {
        let _ = server.await;
    }
}

async fn serve(listener: tokio::net::TcpListener, gateway: Arc<Gateway>, verify: bool) {
    let headers = gateway.clone();
    let app = Router::new()
        .fallback(route)
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
        .with_state(Front { gateway, verify });
    // Without TCP_NODELAY a reply that spans two segments waits on the client's delayed ACK:
    // +40 ms on every history page of 100 messages.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("local-apigw: cannot set TCP_NODELAY: {e}");
        }
    });
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
    State(Front { gateway, verify }): State<Front>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8_lossy()
        .into_owned();
    if let Some((stage, id)) = path.split_once("/@connections/") {
        let (stage, id) = (stage.trim_start_matches('/').to_owned(), id.to_owned());
        return management::handle(&gateway, request, &stage, &id).await;
    }
    if let (Some(auth), true) = (&gateway.auth, path.ends_with("/.well-known/jwks.json")) {
        return auth.jwks();
    }
    if is_websocket_upgrade(&request) {
        let (mut parts, _body) = request.into_parts();
        return match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await
        {
            Ok(upgrade) => websocket::connect(gateway, upgrade, &parts, peer, verify).await,
            Err(rejection) => rejection.into_response(),
        };
    }
    http_api::handle(&gateway, request, peer, verify).await
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
