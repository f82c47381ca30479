//! `local-apigw`: the local stand-in for API Gateway's HTTP API. Each request becomes the
//! payload-2.0 event API Gateway would send, is handed to the function through the Lambda
//! Invoke API of `cargo lambda watch`, and the function's reply becomes the HTTP response.
//!
//! Configuration: `APIGW_LISTEN` (default `127.0.0.1:8000`), `LAMBDA_INVOKE_URL` (default
//! `http://127.0.0.1:9000`).

mod event;
mod routes;

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
use routes::{find, Match, Route};

/// API Gateway's HTTP API payload limit.
const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
/// API Gateway's HTTP API integration timeout.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

struct Gateway {
    routes: Vec<Route>,
    invoke_url: String,
    client: reqwest::Client,
}

#[tokio::main]
async fn main() {
    shared::init_tracing();
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
    let gateway = Arc::new(Gateway {
        routes: routes::routes(),
        invoke_url,
        client,
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
                async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
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

impl Gateway {
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

    /// Calls the function through the Invoke API and turns its reply into a response. A
    /// function error is a 500, as API Gateway answers; an unreachable runtime a 502.
    async fn invoke(&self, function: &str, event: &serde_json::Value) -> Response<Full<Bytes>> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.invoke_url
        );
        let reply = match self.client.post(&url).json(event).send().await {
            Ok(reply) => reply,
            Err(e) if e.is_timeout() => {
                tracing::error!(function, "no reply within the integration timeout");
                return json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the function did not answer in time",
                );
            }
            Err(e) => {
                tracing::error!(function, error = %e, "cannot reach the Lambda runtime");
                return json_error(StatusCode::BAD_GATEWAY, "the function could not be reached");
            }
        };
        let failed =
            !reply.status().is_success() || reply.headers().contains_key("x-amz-function-error");
        let text = reply.text().await.unwrap_or_default();
        if failed {
            tracing::error!(function, reply = %text, "function error");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
        let reply: FunctionReply = match serde_json::from_str(&text) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!(function, error = %e, reply = %text, "malformed function reply");
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
