//! `local-apigw`: the local stand-in for API Gateway. For the HTTP API, each request becomes
//! the payload-2.0 event API Gateway would send, is handed to the function through the Lambda
//! Invoke API of `cargo lambda watch`, and the function's reply becomes the HTTP response. For
//! the WebSocket API, `ws://.../subscribe/{group_id}` (the original app's URL) and
//! `ws://.../?group_id=` (API Gateway's shape) run `$connect` before the handshake completes,
//! client frames go to `$default`, a closed socket to `$disconnect`, and functions push
//! through the Management API at `/@connections/{id}` on the same port.
//!
//! Configuration: `APIGW_LISTEN` (default `127.0.0.1:8000`), `LAMBDA_INVOKE_URL` (default
//! `http://127.0.0.1:9000`).

mod event;
mod routes;
mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming as IncomingBody};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use event::{http_api_event, FunctionReply, Incoming};
use routes::{find, Match, Route, WebSocketRoutes};
use websocket::{route_event, run_socket, Command, Live, Registry, SocketInfo};

/// API Gateway's HTTP API payload limit.
const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
/// API Gateway's HTTP API integration timeout.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Invocations of one function in flight at once; more wait here. `cargo lambda watch` 1.9.2
/// deadlocks for good once 100 invocations of one function queue inside it (it awaits room in a
/// full queue while holding the lock its instances need to drain it), as when a broker outage
/// slows every send down: this keeps its queues short. AWS would throttle instead (429).
const MAX_IN_FLIGHT_PER_FUNCTION: usize = 32;

struct Gateway {
    routes: Vec<Route>,
    websocket: WebSocketRoutes,
    registry: Registry,
    invoke_url: String,
    client: reqwest::Client,
    in_flight: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// Why an invocation gave no usable reply, as the response to send instead.
type InvokeFailure = Response<Full<Bytes>>;

#[tokio::main]
async fn main() {
    shared::lambda::init_logging();
    let listen = std::env::var("APIGW_LISTEN").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let invoke_url = std::env::var("LAMBDA_INVOKE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:9000".into())
        .trim_end_matches('/')
        .to_owned();
    let listener = match TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("local-apigw: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(INTEGRATION_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("local-apigw: cannot build the HTTP client: {e}");
            std::process::exit(1);
        }
    };
    let file = routes::route_file();
    let gateway = Arc::new(Gateway {
        routes: file.routes,
        websocket: file.websocket,
        registry: Registry::default(),
        invoke_url,
        client,
        in_flight: Default::default(),
    });
    tracing::info!(%listen, invoke = %gateway.invoke_url, "local API Gateway listening");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.route(request, peer).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
}

fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn is_websocket_upgrade(request: &Request<IncomingBody>) -> bool {
    let has = |name: hyper::header::HeaderName, token: &str| {
        request.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    };
    request.method() == hyper::Method::GET
        && has(hyper::header::UPGRADE, "websocket")
        && has(hyper::header::CONNECTION, "upgrade")
}

/// The Management API's answer for an unknown or closed connection.
fn gone() -> Response<Full<Bytes>> {
    let mut response = json_error(StatusCode::GONE, "Gone");
    response.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static("GoneException"),
    );
    response
}

impl Gateway {
    async fn route(
        self: Arc<Self>,
        request: Request<IncomingBody>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let path = percent_encoding::percent_decode_str(request.uri().path())
            .decode_utf8_lossy()
            .into_owned();
        if let Some((_, id)) = path.split_once("@connections/") {
            let id = id.to_owned();
            return self.manage(request, &id).await;
        }
        if is_websocket_upgrade(&request) {
            return self.upgrade(request, peer).await;
        }
        self.handle(request, peer).await
    }

    /// `POST` (push), `GET` (status) and `DELETE` (close) of one connection.
    async fn manage(&self, request: Request<IncomingBody>, id: &str) -> Response<Full<Bytes>> {
        let method = request.method().clone();
        let body = match Limited::new(request.into_body(), websocket::MAX_MESSAGE_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "a WebSocket message is limited to 128 KB",
                )
            }
        };
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let Some(live) = registry.get(id) else {
            return gone();
        };
        match method {
            hyper::Method::POST => match live.sender.try_send(Command::Send(body)) {
                Ok(()) => Response::new(Full::new(Bytes::new())),
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "the connection's queue is full",
                ),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => gone(),
            },
            hyper::Method::GET => {
                let last = *live
                    .last_active_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let status = serde_json::json!({
                    "connectedAt": live.connected_at.to_rfc3339(),
                    "identity": {"sourceIp": live.source_ip, "userAgent": live.user_agent},
                    "lastActiveAt": last.to_rfc3339(),
                });
                let mut response = Response::new(Full::new(Bytes::from(status.to_string())));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            hyper::Method::DELETE => {
                let _ = live.sender.try_send(Command::Close);
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }
            _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE"),
        }
    }

    /// A WebSocket handshake: `$connect` decides; on 2xx the socket opens and is served.
    async fn upgrade(
        self: Arc<Self>,
        mut request: Request<IncomingBody>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let mut query: Vec<(String, String)> =
            form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        if let Some(group) = path.strip_prefix("/subscribe/") {
            let group = percent_encoding::percent_decode_str(group).decode_utf8_lossy();
            if group.is_empty() || group.contains('/') {
                return json_error(
                    StatusCode::NOT_FOUND,
                    &format!("no WebSocket route at {path}"),
                );
            }
            query.retain(|(k, _)| k != "group_id");
            query.push(("group_id".into(), group.into_owned()));
        } else if path != "/" {
            return json_error(
                StatusCode::NOT_FOUND,
                &format!("no WebSocket route at {path}"),
            );
        }
        let Some(key) = request
            .headers()
            .get(hyper::header::SEC_WEBSOCKET_KEY)
            .map(|k| k.as_bytes().to_vec())
        else {
            return json_error(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing");
        };
        let header = |name: hyper::header::HeaderName| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let info = SocketInfo {
            connection_id: websocket::new_connection_id(),
            connected_at: chrono::Utc::now(),
            domain_name: header(hyper::header::HOST),
            source_ip: peer.ip().to_string(),
            user_agent: header(hyper::header::USER_AGENT),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            query,
        };
        let reply = match self
            .invoke_json(
                &self.websocket.connect,
                &route_event(&info, "$connect", None),
            )
            .await
        {
            Ok(reply) => reply,
            Err(failure) => return failure,
        };
        let status = reply["statusCode"].as_u64().unwrap_or(502) as u16;
        if !(200..300).contains(&status) {
            let body = reply["body"].as_str().unwrap_or_default().to_owned();
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return response;
        }
        let (sender, commands) = tokio::sync::mpsc::channel(1024);
        let last_active_at = Arc::new(std::sync::Mutex::new(info.connected_at));
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                info.connection_id.clone(),
                Live {
                    sender,
                    connected_at: info.connected_at,
                    last_active_at: last_active_at.clone(),
                    source_ip: info.source_ip.clone(),
                    user_agent: info.user_agent.clone(),
                },
            );
        let on_upgrade = hyper::upgrade::on(&mut request);
        let gateway = self.clone();
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let on_message = |bytes: Vec<u8>, binary: bool| {
                    let (gateway, info) = (gateway.clone(), info.clone());
                    async move {
                        let event = route_event(&info, "$default", Some((&bytes, binary)));
                        let _ = gateway
                            .invoke_json(&gateway.websocket.default, &event)
                            .await;
                    }
                };
                run_socket(TokioIo::new(upgraded), commands, last_active_at, on_message).await;
            }
            gateway
                .registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&info.connection_id);
            let event = route_event(&info, "$disconnect", None);
            let _ = gateway
                .invoke_json(&gateway.websocket.disconnect, &event)
                .await;
        });
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::UPGRADE,
            HeaderValue::from_static("websocket"),
        );
        headers.insert(
            hyper::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        );
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }

    async fn handle(
        &self,
        request: Request<IncomingBody>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let (route, path_parameters) = match find(&self.routes, &method, &path) {
            Match::Found { route, parameters } => (route.clone(), parameters),
            Match::WrongMethod { allowed } => {
                let allow = allowed.join(", ");
                let mut response = json_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &format!("{method} is not allowed on {path}; use {allow}"),
                );
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(hyper::header::ALLOW, value);
                }
                return response;
            }
            Match::NotFound => {
                return json_error(
                    StatusCode::NOT_FOUND,
                    &format!("no route for {method} {path}"),
                )
            }
        };
        let raw_query = request.uri().query().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = match Limited::new(request.into_body(), MAX_PAYLOAD_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body over the {MAX_PAYLOAD_BYTES}-byte limit"),
                )
            }
            Err(_) => {
                return json_error(StatusCode::BAD_REQUEST, "could not read the request body")
            }
        };
        let event = http_api_event(&Incoming {
            method: &method,
            path: &path,
            raw_query: &raw_query,
            headers,
            body: &body,
            route_key: format!("{} {}", route.method, route.path),
            path_parameters,
            source_ip: peer.ip().to_string(),
        });
        self.invoke(&route.function, &event).await
    }

    /// Calls the function through the Invoke API; its JSON reply, or the response to give
    /// instead: a function error is a 500, as API Gateway answers; an unreachable runtime 502.
    async fn invoke_json(
        &self,
        function: &str,
        event: &serde_json::Value,
    ) -> Result<serde_json::Value, InvokeFailure> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.invoke_url
        );
        let slots = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(function.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT_PER_FUNCTION)))
            .clone();
        let Ok(Ok(_slot)) = tokio::time::timeout(INTEGRATION_TIMEOUT, slots.acquire_owned()).await
        else {
            tracing::error!(
                function,
                "too many invocations in flight; none finished in time"
            );
            let mut busy = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the function is busy; retry shortly",
            );
            busy.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(busy);
        };
        let reply = match self.client.post(&url).json(event).send().await {
            Ok(reply) => reply,
            Err(e) if e.is_timeout() => {
                tracing::error!(function, "no reply within the integration timeout");
                return Err(json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the function did not answer in time",
                ));
            }
            Err(e) => {
                tracing::error!(function, error = %e, "cannot reach the Lambda runtime");
                return Err(json_error(
                    StatusCode::BAD_GATEWAY,
                    "the function could not be reached",
                ));
            }
        };
        let failed =
            !reply.status().is_success() || reply.headers().contains_key("x-amz-function-error");
        let text = reply.text().await.unwrap_or_default();
        if failed {
            tracing::error!(function, reply = %text, "function error");
            return Err(json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ));
        }
        serde_json::from_str(&text).map_err(|e| {
            tracing::error!(function, error = %e, reply = %text, "malformed function reply");
            json_error(
                StatusCode::BAD_GATEWAY,
                "the function sent a malformed reply",
            )
        })
    }

    /// Calls an HTTP API function and turns its reply into the response.
    async fn invoke(&self, function: &str, event: &serde_json::Value) -> Response<Full<Bytes>> {
        let value = match self.invoke_json(function, event).await {
            Ok(value) => value,
            Err(failure) => return failure,
        };
        let reply: FunctionReply = match serde_json::from_value(value) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!(function, error = %e, "malformed function reply");
                return json_error(
                    StatusCode::BAD_GATEWAY,
                    "the function sent a malformed reply",
                );
            }
        };
        let Ok(body) = reply.body_bytes() else {
            return json_error(
                StatusCode::BAD_GATEWAY,
                "the function sent a malformed reply",
            );
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() =
            StatusCode::from_u16(reply.status_code).unwrap_or(StatusCode::BAD_GATEWAY);
        for (name, value) in reply.header_pairs() {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}
