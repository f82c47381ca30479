//! The WebSocket side of the emulator: the API Gateway WebSocket API's `$connect`,
//! `$disconnect` and `$default` routes, and the Management API that functions push through
//! (`POST`/`GET`/`DELETE /@connections/{id}`), with API Gateway's limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use hyper::body::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// API Gateway's limits for WebSocket APIs.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const MAX_CONNECTION: Duration = Duration::from_secs(2 * 60 * 60);

pub enum Command {
    Send(Bytes),
    Close,
}

/// A live socket, as the Management API sees it.
pub struct Live {
    pub sender: mpsc::Sender<Command>,
    pub connected_at: DateTime<Utc>,
    pub last_active_at: Arc<Mutex<DateTime<Utc>>>,
    pub source_ip: String,
    pub user_agent: String,
}

pub type Registry = Arc<Mutex<HashMap<String, Live>>>;

/// A connection id in API Gateway's style (base64 of random bytes, 16 characters).
pub fn new_connection_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    base64::engine::general_purpose::STANDARD
        .encode(&bytes[..10])
        .replace('/', "_")
}

/// What the emulator knows of a socket, for the events it sends the route functions.
#[derive(Clone)]
pub struct SocketInfo {
    pub connection_id: String,
    pub connected_at: DateTime<Utc>,
    pub domain_name: String,
    pub source_ip: String,
    pub user_agent: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
}

/// The event of a WebSocket route (`$connect`, `$disconnect`, `$default`), in the shape API
/// Gateway sends (aws_lambda_events' `ApiGatewayWebsocketProxyRequest`).
pub fn route_event(info: &SocketInfo, route: &str, body: Option<(&[u8], bool)>) -> Value {
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    let now = Utc::now();
    let mut context = json!({
        "routeKey": route,
        "eventType": event_type,
        "extendedRequestId": uuid::Uuid::new_v4().to_string(),
        "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "messageDirection": "IN",
        "stage": "local",
        "connectedAt": info.connected_at.timestamp_millis(),
        "requestTimeEpoch": now.timestamp_millis(),
        "identity": {"sourceIp": info.source_ip, "userAgent": info.user_agent},
        "requestId": uuid::Uuid::new_v4().to_string(),
        "domainName": info.domain_name,
        "connectionId": info.connection_id,
        "apiId": "local",
    });
    let mut event = json!({"isBase64Encoded": false});
    if route == "$connect" {
        let headers: serde_json::Map<String, Value> = info
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let multi: serde_json::Map<String, Value> = info
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        event["headers"] = Value::Object(headers);
        event["multiValueHeaders"] = Value::Object(multi);
        if !info.query.is_empty() {
            let single: serde_json::Map<String, Value> = info
                .query
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            let mut multi: serde_json::Map<String, Value> = serde_json::Map::new();
            for (k, v) in &info.query {
                let entry = multi.entry(k.clone()).or_insert_with(|| json!([]));
                if let Value::Array(list) = entry {
                    list.push(Value::from(v.as_str()));
                }
            }
            event["queryStringParameters"] = Value::Object(single);
            event["multiValueQueryStringParameters"] = Value::Object(multi);
        }
    }
    if route == "$disconnect" {
        context["disconnectStatusCode"] = json!(1000);
        context["disconnectReason"] = json!("");
    }
    if let Some((bytes, binary)) = body {
        context["messageId"] = Value::from(uuid::Uuid::new_v4().to_string());
        if binary {
            event["body"] = Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
            event["isBase64Encoded"] = Value::from(true);
        } else {
            event["body"] = Value::from(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    event["requestContext"] = context;
    event
}

pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Runs one accepted socket until it closes, its idle timeout or its maximum age; every frame
/// from the client goes to `on_message`. Returns once the socket is gone.
pub async fn run_socket<S, F, Fut>(
    stream: S,
    mut commands: mpsc::Receiver<Command>,
    last_active_at: Arc<Mutex<DateTime<Utc>>>,
    on_message: F,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    F: Fn(Vec<u8>, bool) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut socket =
        WebSocketStream::from_raw_socket(stream, Role::Server, Some(socket_config())).await;
    let deadline = tokio::time::sleep(MAX_CONNECTION);
    tokio::pin!(deadline);
    let close = |code: CloseCode, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    loop {
        let idle = tokio::time::sleep(IDLE_TIMEOUT);
        tokio::select! {
            _ = &mut deadline => {
                let _ = socket.send(close(CloseCode::Away, "Going away")).await;
                break;
            }
            _ = idle => {
                let _ = socket.send(close(CloseCode::Away, "Going away")).await;
                break;
            }
            command = commands.recv() => match command {
                Some(Command::Send(bytes)) => {
                    let frame = match std::str::from_utf8(&bytes) {
                        Ok(text) => Message::text(text),
                        Err(_) => Message::binary(bytes),
                    };
                    if socket.send(frame).await.is_err() {
                        break;
                    }
                }
                Some(Command::Close) | None => {
                    let _ = socket.send(close(CloseCode::Normal, "")).await;
                    break;
                }
            },
            incoming = socket.next() => {
                *last_active_at.lock().unwrap_or_else(|p| p.into_inner()) = Utc::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        tokio::spawn(on_message(text.as_bytes().to_vec(), false));
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        tokio::spawn(on_message(bytes.to_vec(), true));
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                        let _ = socket.send(close(CloseCode::Size, "Message too big")).await;
                        break;
                    }
                    Some(Err(_)) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

    fn info() -> SocketInfo {
        SocketInfo {
            connection_id: "abcDEF123=".into(),
            connected_at: Utc::now(),
            domain_name: "localhost".into(),
            source_ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            headers: vec![("Host".into(), "localhost:8000".into())],
            query: vec![("group_id".into(), "2".into())],
        }
    }

    #[test]
    fn route_events_deserialize_as_aws_lambda_events_websocket_requests() {
        for (route, body) in [
            ("$connect", None),
            ("$default", Some((&b"hi"[..], false))),
            ("$disconnect", None),
        ] {
            let event = route_event(&info(), route, body);
            let parsed: ApiGatewayWebsocketProxyRequest =
                serde_json::from_value(event).unwrap_or_else(|e| panic!("{route}: {e}"));
            let ctx = &parsed.request_context;
            assert_eq!(ctx.route_key.as_deref(), Some(route));
            assert_eq!(ctx.connection_id.as_deref(), Some("abcDEF123="));
            if route == "$connect" {
                assert_eq!(parsed.query_string_parameters.first("group_id"), Some("2"));
            }
        }
        let binary = route_event(&info(), "$default", Some((&[0xff][..], true)));
        assert_eq!(binary["isBase64Encoded"], true);
    }

    #[test]
    fn connection_ids_are_unique_and_url_safe_enough() {
        let a = new_connection_id();
        assert_ne!(a, new_connection_id());
        assert!(!a.contains('/'));
    }
}
