//! One way to start a function: logging through the Lambda runtime's own subscriber (it honours
//! `AWS_LAMBDA_LOG_FORMAT=JSON` and `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`), the context built
//! once per process, and our errors turned into what API Gateway or the event source expects.
//! A function's `main` is two lines:
//!
//! ```text
//! let ctx = shared::lambda::start(Kafka::NotUsed).await?;
//! shared::lambda::run_http(ctx, list_users::handle).await
//! ```

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_http::{Body, Request, Response};
use lambda_runtime::LambdaEvent;
use serde::Serialize;

use crate::context::{AppContext, Kafka};
use crate::error::ChatError;

pub use lambda_runtime::Error;

/// The runtime's log subscriber; also for our local tools, so that every process logs alike.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Logging, then the context. It lives as long as the process, so every invocation borrows it.
pub async fn start(kafka: Kafka) -> Result<&'static AppContext, Error> {
    init_logging();
    let ctx = AppContext::from_env(kafka)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    Ok(Box::leak(Box::new(ctx)))
}

/// Serves an HTTP API route. The handler's error becomes the JSON error reply; the invocation
/// itself never fails, as API Gateway would answer a failed one with a bare 500.
pub async fn run_http<F, Fut>(ctx: &'static AppContext, handler: F) -> Result<(), Error>
where
    F: Fn(&'static AppContext, Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ChatError>> + Send,
{
    lambda_http::run(lambda_http::service_fn(move |request: Request| {
        let reply = handler(ctx, request);
        async move { Ok::<_, Error>(crate::http::reply(reply.await)) }
    }))
    .await
}

/// Serves a WebSocket route (`$connect`, `$disconnect`, `$default`): `Ok` is a 200, an error
/// its status and `{"error": ...}` (on `$connect`, anything but 2xx refuses the socket).
pub async fn run_ws<F, Fut>(ctx: &'static AppContext, handler: F) -> Result<(), Error>
where
    F: Fn(&'static AppContext, ApiGatewayWebsocketProxyRequest) -> Fut,
    Fut: Future<Output = Result<(), ChatError>> + Send,
{
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let result = handler(ctx, event.payload);
            async move { Ok::<_, Error>(crate::ws::response(result.await)) }
        },
    ))
    .await
}

/// Serves a Kafka event source with `state` (kept for the life of the process). `B` is how
/// the handler reads the batch (leniently, so that one odd record cannot fail it). An error
/// fails the invocation, so that the event source retries the batch; a success's value (the
/// partial batch response) is the function's result.
pub async fn run_kafka<S, B, F, Fut, R, E>(state: S, handler: F) -> Result<(), Error>
where
    S: Sync + 'static,
    B: serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&'static S, B) -> Fut,
    Fut: Future<Output = Result<R, E>> + Send,
    R: Serialize,
    E: Display,
{
    let state: &'static S = Box::leak(Box::new(state));
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<B>| {
        let outcome = handler(state, event.payload);
        async move {
            outcome.await.map_err(|e| {
                tracing::error!(error = %e, "batch failed; it will be retried");
                Error::from(e.to_string())
            })
        }
    }))
    .await
}
