//! The API Gateway Management API that functions push through: `POST /@connections/{id}`
//! (a frame, 128 KB at most), `GET` (the connection's status), `DELETE` (close it). An unknown
//! or closed connection is `410 Gone`; a socket whose queue is full, `429`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use tokio::sync::mpsc::error::TrySendError;

use crate::websocket::{Command, MAX_MESSAGE_BYTES};
use crate::{json_error, Gateway};

pub async fn handle(gateway: &Gateway, request: Request, id: &str) -> Response {
    let method = request.method().clone();
    let body = match axum::body::to_bytes(request.into_body(), MAX_MESSAGE_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a WebSocket message is limited to 128 KB",
            )
        }
    };
    gateway.sockets.with(|sockets| {
        let Some(live) = sockets.get(id) else {
            return gone();
        };
        match method {
            Method::POST => match live.sender.try_send(Command::Send(body)) {
                Ok(()) => Response::new(Body::empty()),
                Err(TrySendError::Full(_)) => json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "the connection's queue is full",
                ),
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
                let _ = live.sender.try_send(Command::Close);
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }
            _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE"),
        }
    })
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
