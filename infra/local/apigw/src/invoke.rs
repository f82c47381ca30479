//! Calling a function through the Lambda Invoke API (`cargo lambda watch`), as API Gateway's
//! integration does: bounded in time, and in how many calls of one function are in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::reply::json_error;

/// API Gateway's integration timeout.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Invocations of one function in flight at once; more wait here. `cargo lambda watch` 1.9.2
/// deadlocks for good once 100 invocations of one function queue inside it (it awaits room in a
/// full queue while holding the lock its instances need to drain it), as when a broker outage
/// slows every send down: this keeps its queues short. AWS would throttle instead (429).
const MAX_IN_FLIGHT_PER_FUNCTION: usize = 32;

pub struct Invoker {
    url: String,
    client: reqwest::Client,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Why an invocation gave no usable reply: the response to give instead.
pub type InvokeFailure = Response;

impl Invoker {
    pub fn new(url: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(INTEGRATION_TIMEOUT)
            // A new connection per invocation: cargo lambda's server writes a large reply in
            // two parts without TCP_NODELAY, and on a kept-alive connection the second part
            // waits for our delayed ACK, 40 ms (a history page: 10 ms or 52 ms at random). A
            // fresh loopback connection acknowledges at once and costs ~0.1 ms.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            client,
            in_flight: Mutex::default(),
        })
    }

    /// Calls `function` with `event`; its reply, or the response to give instead: a function
    /// error is a 500, as API Gateway answers; an unreachable runtime 502; no answer 504.
    pub async fn invoke<E: Serialize, R: DeserializeOwned>(
        &self,
        function: &str,
        event: &E,
    ) -> Result<R, InvokeFailure> {
        match self.call(function, event).await? {
            Ok(reply) => Ok(reply),
            Err(error) => {
                tracing::error!(function, reply = %error, "function error");
                Err(json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                ))
            }
        }
    }

    /// Calls `function`; its reply, or the function's own error (its `errorMessage`), or the
    /// response to give when it could not be called at all.
    pub async fn call<E: Serialize, R: DeserializeOwned>(
        &self,
        function: &str,
        event: &E,
    ) -> Result<Result<R, String>, InvokeFailure> {
        let slots = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(function.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_FUNCTION)))
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
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(busy);
        };
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.url);
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
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Ok(Err(message));
        }
        serde_json::from_str(&text).map(Ok).map_err(|e| {
            tracing::error!(function, error = %e, reply = %text, "malformed function reply");
            json_error(
                StatusCode::BAD_GATEWAY,
                "the function sent a malformed reply",
            )
        })
    }
}
