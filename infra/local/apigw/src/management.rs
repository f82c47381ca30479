//! The API Gateway Management API that functions push through: `POST
//! /{stage}/@connections/{id}` (a frame, 128 KB at most), `GET` (the connection's status),
//! `DELETE` (close it). Each call must be signed (SigV4) by a caller whose policies allow
//! `execute-api:ManageConnections` on it, else 403 as AWS answers. An unknown or closed
//! connection is `410 Gone`; a push that finds the socket's queue full closes it (410).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use tokio::sync::mpsc::error::TrySendError;

use crate::gateway::Gateway;
use crate::reply::json_error;
use crate::socket::{Command, MAX_MESSAGE_BYTES};

pub async fn handle(gateway: &Gateway, request: Request, stage: &str, id: &str) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let body = match axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a WebSocket message is limited to 128 KB",
            )
        }
    };
    if stage != gateway.stage {
        // A stage the API does not have: API Gateway's answer for a path it does not serve.
        return refusal("ForbiddenException", "Forbidden");
    }
    let headers = local_iam::sigv4::header_pairs(&parts.headers);
    let signed = local_iam::sigv4::SignedRequest {
        method: method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &headers,
        body: &body,
    };
    if let Err(refused) = gateway.iam.authorize_management_call(&signed, stage, id) {
        return refusal(refused.error_type, &refused.message);
    }
    gateway.sockets.with(|sockets| {
        let Some(live) = sockets.get(id) else {
            return gone();
        };
        match method {
            Method::POST => match live.sender.try_send(Command::Send(body)) {
                Ok(()) => Response::new(Body::empty()),
                // A client that does not read costs only itself: it is closed, as API Gateway
                // closes a connection it cannot deliver to, and this and later pushes are 410.
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(connection = %chat_core::push::log_tag(id), "closing a socket whose queue is full");
                    live.closer.notify_one();
                    sockets.remove(id);
                    gone()
                }
                Err(TrySendError::Closed(_)) => gone(),
            },
            Method::GET => {
                let last = *live
                    .last_active_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let status = serde_json::json!({
                    "connectedAt": live.connected_at.to_rfc3339(),
                    "identity": {"sourceIp": live.source_ip, "userAgent": live.user_agent},
                    "lastActiveAt": last.to_rfc3339(),
                });
                let mut response = Response::new(Body::from(status.to_string()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Method::DELETE => {
                if live.sender.try_send(Command::Close(1000, "")).is_err() {
                    live.closer.notify_one();
                }
                sockets.remove(id);
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }
            _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE"),
        }
    })
}

/// The Management API's 403: AWS's error type and message (`{"message": ...}`).
fn refusal(error_type: &'static str, message: &str) -> Response {
    let mut response = crate::reply::message(StatusCode::FORBIDDEN, message);
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    response
}

/// The Management API's answer for an unknown or closed connection.
fn gone() -> Response {
    let mut response = json_error(StatusCode::GONE, "Gone");
    response.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static("GoneException"),
    );
    response
}
