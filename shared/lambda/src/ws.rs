//! Helpers for the WebSocket route functions (`$connect`, `$disconnect`, `$default`): the
//! event API Gateway sends them and the reply it expects.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

use chat_core::error::ChatError;

/// How long a connection may live: API Gateway closes it after two hours.
pub const MAX_CONNECTION_SECONDS: i64 = chat_core::domain::MAX_SOCKET_SECONDS;

/// The reply: a status and, for a refusal, `{"error": ...}`. On `$connect`, anything but 2xx
/// refuses the socket.
pub fn response(result: Result<(), ChatError>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    match result {
        Ok(()) => response.status_code = 200,
        Err(e) => {
            if e.is_server_error() {
                tracing::error!(cause = %e, "WebSocket route failed");
            } else {
                tracing::info!(reason = %e, "WebSocket request refused");
            }
            response.status_code = i64::from(e.status());
            response.body = Some(Body::Text(e.body()));
        }
    }
    response
}

/// The connection id API Gateway assigned.
pub fn connection_id(request: &ApiGatewayWebsocketProxyRequest) -> Result<&str, ChatError> {
    request
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ChatError::BadRequest("the event has no connection id".into()))
}
