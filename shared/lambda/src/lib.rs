//! `chat-lambda`, the Lambda glue. One way to start a function: logging through the Lambda
//! runtime's own subscriber (it honours
//! `AWS_LAMBDA_LOG_FORMAT=JSON` and `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`), metrics in
//! CloudWatch's Embedded Metric Format ([`metrics`], flushed after every invocation),
//! the context built once per process, and our errors turned into what API Gateway or the event
//! source expects. Every API request logs one structured line: route, status, duration.
//! A function's `main` is two lines:
//!
//! ```text
//! let ctx = chat_lambda::start(list_users::Context::from_config).await?;
//! chat_lambda::run_http(ctx, list_users::handle).await
//! ```

use std::fmt::Display;
use std::future::Future;
use std::time::Instant;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_http::{Body, Request, Response};
use lambda_runtime::LambdaEvent;
use serde::Serialize;

use chat_core::config::Config;
use chat_core::error::ChatError;

pub mod http;
pub mod identity;
pub mod metrics;
pub mod ws;

pub use lambda_runtime::Error;

/// The runtime's log subscriber, as `lambda_runtime`'s default one sets it up (level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`),
/// but a JSON line names its span once: the default repeats the current span (request id and
/// trace id) in a list of all spans, a third of every line, and CloudWatch Logs bills by the
/// byte. Also for our local tools, so that every process logs alike.
pub fn init_logging() {
    use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let builder = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Another subscriber already set (a test harness) keeps its place.
    let _ = if json {
        builder.json().with_span_list(false).try_init()
    } else {
        builder.try_init()
    };
}

/// Logging, metrics, the configuration, then the function's context made of it by `build`
/// (the clients of exactly the capabilities the function uses). It lives as long as the
/// process, so every invocation borrows it.
pub async fn start<C: 'static, F, Fut, E>(build: F) -> Result<&'static C, Error>
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<C, E>>,
    E: Display,
{
    init_logging();
    metrics::init();
    let config = Config::from_env().map_err(|e| {
        tracing::error!(error = %e, "cannot start");
        Error::from(e.to_string())
    })?;
    let ctx = build(config).await.map_err(|e| {
        tracing::error!(error = %e, "cannot start");
        Error::from(e.to_string())
    })?;
    Ok(Box::leak(Box::new(ctx)))
}

/// Serves an HTTP API route. The handler's error becomes the JSON error reply; the invocation
/// itself never fails, as API Gateway would answer a failed one with a bare 500.
pub async fn run_http<C, F, Fut>(ctx: &'static C, handler: F) -> Result<(), Error>
where
    C: Sync,
    F: Fn(&'static C, Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ChatError>> + Send,
{
    lambda_http::run(lambda_http::service_fn(move |request: Request| {
        let started = Instant::now();
        let route = http_route(&request);
        let reply = handler(ctx, request);
        async move {
            let response = http::reply(reply.await);
            metrics::request_done(&route, response.status().as_u16(), started.elapsed());
            metrics::invocation_done(started.elapsed());
            Ok::<_, Error>(response)
        }
    }))
    .await
}

/// API Gateway's route key (`POST /send-message/`), as metrics and logs name the route.
fn http_route(request: &Request) -> String {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.route_key.clone(),
        _ => None,
    }
    .unwrap_or_else(|| format!("{} {}", request.method(), request.uri().path()))
}

/// Serves a WebSocket route (`$connect`, `$disconnect`, `$default`): `Ok` is a 200, an error
/// its status and `{"error": ...}` (on `$connect`, anything but 2xx refuses the socket).
pub async fn run_ws<C, F, Fut>(ctx: &'static C, handler: F) -> Result<(), Error>
where
    C: Sync,
    F: Fn(&'static C, ApiGatewayWebsocketProxyRequest) -> Fut,
    Fut: Future<Output = Result<(), ChatError>> + Send,
{
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let started = Instant::now();
            let route = event
                .payload
                .request_context
                .route_key
                .clone()
                .unwrap_or_else(|| "$default".into());
            let result = handler(ctx, event.payload);
            async move {
                let response = ws::response(result.await);
                let status = u16::try_from(response.status_code).unwrap_or(500);
                metrics::request_done(&route, status, started.elapsed());
                metrics::invocation_done(started.elapsed());
                Ok::<_, Error>(response)
            }
        },
    ))
    .await
}

/// Serves an event source other than API Gateway with `state` (made by [`start`]): the Kafka
/// trigger, Cognito's triggers. `B` is how the handler reads the event (for a Kafka batch,
/// leniently, so that one odd record cannot fail it). An error fails the invocation, so that
/// the source retries it; a success's value (the partial batch response, the trigger's
/// answer) is the function's result.
pub async fn run_event<S, B, F, Fut, R, E>(state: &'static S, handler: F) -> Result<(), Error>
where
    S: Sync + 'static,
    B: serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&'static S, B) -> Fut,
    Fut: Future<Output = Result<R, E>> + Send,
    R: Serialize,
    E: Display,
{
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<B>| {
        let started = Instant::now();
        let outcome = handler(state, event.payload);
        async move {
            let outcome = outcome.await.map_err(|e| {
                tracing::error!(error = %e, "the event failed; its source retries it");
                Error::from(e.to_string())
            });
            metrics::invocation_done(started.elapsed());
            outcome
        }
    }))
    .await
}
