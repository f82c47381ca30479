//! The WebSocket API: `$connect` decides whether a handshake completes, client frames go to
//! the route their `action` selects (`typing`; any other frame is dropped, as the deployed
//! `$default` MOCK integration does), a closed socket to `$disconnect`; API Gateway's limits apply (128 KB a message,
//! 10 minutes idle, 2 hours at most). Events are `aws_lambda_events`'
//! `ApiGatewayWebsocketProxyRequest`, shaped as API Gateway sends them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayRequestIdentity, ApiGatewayWebsocketProxyRequest,
    ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::query_map::QueryMap;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use chrono::Utc;
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::gateway::Gateway;
use crate::reply::json_error;
use crate::socket::{
    serve, Live, SocketInfo, MAX_DEFAULT_IN_FLIGHT, MAX_MESSAGE_BYTES, QUEUE_FRAMES,
};

/// A connection id in API Gateway's style (base64 of random bytes, 16 characters).
pub fn new_connection_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    base64::engine::general_purpose::STANDARD
        .encode(&bytes[..10])
        .replace('/', "_")
}

/// Whether a handshake's `Origin` may open a socket: a browser always sends one, and a page
/// of another site must not act as its visitor (in trust-client mode, as anyone at all). The
/// gateway's own page may (its origin is the `Host` the request came to, when that is a
/// loopback name: a rebound DNS name is not), as may the origins configured; a client that
/// is not a browser sends none.
pub(crate) fn origin_allowed(origin: Option<&str>, host: &str, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    let hostname = match authority.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => authority,
    };
    chat_auth::is_loopback_host(hostname) && authority.eq_ignore_ascii_case(host)
}

/// The handshake's query as `$connect` gets it: `/subscribe/{group_id}` becomes
/// `?group_id=`, `/subscribe` names no group, as `/` without one (both only with
/// `subscribe_path`); `None` for a path with no WebSocket route.
fn socket_query(
    path: &str,
    query: Option<&str>,
    subscribe_path: bool,
) -> Option<Vec<(String, String)>> {
    let mut query: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    match path.strip_prefix("/subscribe/").filter(|_| subscribe_path) {
        Some(group) => {
            let group = percent_encoding::percent_decode_str(group).decode_utf8_lossy();
            if group.is_empty() || group.contains('/') {
                return None;
            }
            query.retain(|(k, _)| k != "group_id");
            query.push(("group_id".into(), group.into_owned()));
        }
        None if path == "/" || (path == "/subscribe" && subscribe_path) => {}
        None => return None,
    }
    Some(query)
}

/// A handshake: the group comes from `?group_id=` (API Gateway's shape) or from
/// `/subscribe/{group_id}` (the original app's URL, which AWS cannot route); without one
/// (`/` or `/subscribe`) the socket follows all its user's groups. `$connect` decides, and on
/// 2xx the socket opens and is served until it closes.
pub async fn connect(
    gateway: Arc<Gateway>,
    upgrade: WebSocketUpgrade,
    parts: &Parts,
    peer: SocketAddr,
    verify: bool,
) -> Response {
    let path = parts.uri.path();
    let query = match socket_query(path, parts.uri.query(), gateway.compat.subscribe_path) {
        Some(query) => query,
        None => {
            return json_error(
                StatusCode::NOT_FOUND,
                &format!("no WebSocket route at {path}"),
            )
        }
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("?"));
    if !origin_allowed(origin, &header(header::HOST), &gateway.allowed_origins) {
        tracing::warn!(origin, "refused a WebSocket upgrade from another origin");
        return json_error(
            StatusCode::FORBIDDEN,
            "this origin may not open a WebSocket here (APIGW_ALLOWED_ORIGINS)",
        );
    }
    let mut info = SocketInfo {
        connection_id: new_connection_id(),
        connected_at: Utc::now(),
        domain_name: header(header::HOST),
        source_ip: peer.ip().to_string(),
        user_agent: header(header::USER_AGENT),
        headers: parts.headers.clone(),
        query,
        authorizer: HashMap::new(),
    };
    if verify {
        let authorizer = &gateway.websocket_authorizer;
        match crate::auth::authorize_connect(&gateway.invoker, authorizer, &info).await {
            Ok(context) => info.authorizer = context,
            Err(refusal) => return refusal,
        }
    }
    // The socket is known before `$connect` runs: a frame pushed to it between `$connect`
    // storing the connection and the handshake's end is queued, not refused with 410.
    let (sender, commands) = mpsc::channel(QUEUE_FRAMES);
    let closer = Arc::new(Notify::new());
    let last_active_at = Arc::new(Mutex::new(info.connected_at));
    gateway.sockets.with(|sockets| {
        sockets.insert(
            info.connection_id.clone(),
            Live {
                sender: sender.clone(),
                closer: closer.clone(),
                connected_at: info.connected_at,
                last_active_at: last_active_at.clone(),
                source_ip: info.source_ip.clone(),
                user_agent: info.user_agent.clone(),
            },
        )
    });
    let forget = |gateway: &Gateway, id: &str| gateway.sockets.with(|sockets| sockets.remove(id));
    let reply: ApiGatewayProxyResponse = match gateway
        .invoker
        .invoke(
            &gateway.websocket.connect,
            &route_event(&info, "$connect", None),
        )
        .await
    {
        Ok(reply) => reply,
        Err(failure) => {
            forget(&gateway, &info.connection_id);
            return failure;
        }
    };
    if !(200..300).contains(&reply.status_code) {
        forget(&gateway, &info.connection_id);
        let body = match reply.body {
            Some(EventBody::Text(text)) => text,
            _ => String::new(),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = u16::try_from(reply.status_code)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let failed = (gateway.clone(), info.clone());
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_failed_upgrade(move |e| {
            let (gateway, info) = failed;
            tracing::warn!(error = %e, connection = %chat_core::push::log_tag(&info.connection_id), "a WebSocket handshake failed after $connect");
            forget(&gateway, &info.connection_id);
            tokio::spawn(disconnected(gateway, info));
        })
        .on_upgrade(move |socket| async move {
            // Calls in flight per socket are bounded, as API Gateway throttles them. A frame no
            // function's route selects is dropped, as the MOCK `$default` integration does.
            let in_flight = Arc::new(Semaphore::new(MAX_DEFAULT_IN_FLIGHT));
            let on_message = |bytes: Vec<u8>, binary: bool| {
                let (gateway, info) = (gateway.clone(), info.clone());
                let route = gateway.websocket.for_frame(&bytes, binary);
                let permit = match route {
                    Some(_) => Some(in_flight.clone().try_acquire_owned().ok()?),
                    None => None,
                };
                Some(async move {
                    if let Some((route_key, function)) = route {
                        let event = route_event(&info, &route_key, Some((&bytes, binary)));
                        let _ = gateway
                            .invoker
                            .invoke::<_, serde_json::Value>(&function, &event)
                            .await;
                    }
                    drop(permit);
                })
            };
            serve(socket, sender, commands, closer, last_active_at, &info.connection_id, on_message).await;
            forget(&gateway, &info.connection_id);
            disconnected(gateway, info).await;
        })
}

async fn disconnected(gateway: Arc<Gateway>, info: SocketInfo) {
    let event = route_event(&info, "$disconnect", None);
    let _ = gateway
        .invoker
        .invoke::<_, serde_json::Value>(&gateway.websocket.disconnect, &event)
        .await;
}

/// The event of a WebSocket route (`$connect`, `$disconnect`, `typing`).
pub fn route_event(
    info: &SocketInfo,
    route: &str,
    body: Option<(&[u8], bool)>,
) -> ApiGatewayWebsocketProxyRequest {
    let now = Utc::now();
    let mut identity = ApiGatewayRequestIdentity::default();
    identity.source_ip = Some(info.source_ip.clone());
    identity.user_agent = Some(info.user_agent.clone());

    let mut context = ApiGatewayWebsocketProxyRequestContext::default();
    context.route_key = Some(route.to_owned());
    context.event_type = Some(
        match route {
            "$connect" => "CONNECT",
            "$disconnect" => "DISCONNECT",
            _ => "MESSAGE",
        }
        .to_owned(),
    );
    context.extended_request_id = Some(uuid::Uuid::new_v4().to_string());
    context.request_time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    context.message_direction = Some("IN".into());
    context.stage = Some("local".into());
    context.connected_at = info.connected_at.timestamp_millis();
    context.request_time_epoch = now.timestamp_millis();
    context.identity = identity;
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.domain_name = Some(info.domain_name.clone());
    context.connection_id = Some(info.connection_id.clone());
    context.apiid = Some("local".into());
    context.authorizer.fields = info.authorizer.clone();
    if route == "$disconnect" {
        context.disconnect_status_code = Some(1000);
        context.disconnect_reason = Some(String::new());
    }

    let mut event = ApiGatewayWebsocketProxyRequest::default();
    if route == "$connect" {
        // Only `$connect` carries the handshake's headers and query string.
        event.headers = info.headers.clone();
        event.multi_value_headers = info.headers.clone();
        let mut query: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in &info.query {
            query.entry(k.clone()).or_default().push(v.clone());
        }
        event.query_string_parameters = QueryMap::from(query.clone());
        event.multi_value_query_string_parameters = QueryMap::from(query);
    }
    if let Some((bytes, binary)) = body {
        context.message_id = Some(uuid::Uuid::new_v4().to_string());
        if binary {
            event.body = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            event.is_base64_encoded = true;
        } else {
            event.body = Some(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    event.request_context = context;
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn info() -> SocketInfo {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("localhost:8000"));
        SocketInfo {
            connection_id: "abcDEF123=".into(),
            connected_at: Utc::now(),
            domain_name: "localhost".into(),
            source_ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            headers,
            query: vec![("group_id".into(), "2".into())],
            authorizer: [("user_id".to_owned(), serde_json::json!("3"))].into(),
        }
    }

    #[test]
    fn only_the_gateways_own_page_and_configured_origins_open_sockets_from_a_browser() {
        let allowed = ["https://chat.example.com".to_owned()];
        for (origin, host, ok) in [
            (None, "127.0.0.1:8000", true),
            (Some("http://127.0.0.1:8000"), "127.0.0.1:8000", true),
            (Some("http://localhost:8000"), "localhost:8000", true),
            (Some("http://[::1]:8000"), "[::1]:8000", true),
            (Some("https://chat.example.com"), "127.0.0.1:8000", true),
            (Some("https://evil.example"), "127.0.0.1:8000", false),
            (Some("http://localhost:9999"), "127.0.0.1:8000", false),
            (Some("null"), "127.0.0.1:8000", false),
            // DNS rebinding: a page whose name now points here is same-origin, not loopback.
            (Some("http://evil.example:8000"), "evil.example:8000", false),
        ] {
            assert_eq!(
                origin_allowed(origin, host, &allowed),
                ok,
                "{origin:?} to {host}"
            );
        }
    }

    #[test]
    fn the_original_apps_paths_become_api_gateways_query_unless_turned_off() {
        let q = |path: &str, query: Option<&str>, on: bool| socket_query(path, query, on);
        let pairs = |list: &[(&str, &str)]| -> Option<Vec<(String, String)>> {
            Some(
                list.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(
            q("/subscribe/7", Some("token=t&group_id=1"), true),
            pairs(&[("token", "t"), ("group_id", "7")])
        );
        assert_eq!(
            q("/subscribe", Some("user_id=3"), true),
            pairs(&[("user_id", "3")])
        );
        assert_eq!(
            q("/", Some("group_id=2"), true),
            pairs(&[("group_id", "2")])
        );
        assert_eq!(q("/", None, false), pairs(&[]));
        for (path, on) in [
            ("/subscribe/7", false),
            ("/subscribe", false),
            ("/subscribe/", true),
            ("/subscribe/1/2", true),
            ("/live", true),
        ] {
            assert_eq!(q(path, None, on), None, "{path} (subscribe-path {on})");
        }
    }

    #[test]
    fn route_events_have_api_gateways_shape() {
        for (route, body, event_type) in [
            ("$connect", None, "CONNECT"),
            ("$default", Some((&b"hi"[..], false)), "MESSAGE"),
            ("$disconnect", None, "DISCONNECT"),
        ] {
            let event = serde_json::to_value(route_event(&info(), route, body)).expect("json");
            let ctx = &event["requestContext"];
            assert_eq!(ctx["routeKey"], route);
            assert_eq!(ctx["eventType"], event_type);
            assert_eq!(ctx["connectionId"], "abcDEF123=");
            assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
            // The authorizer's context reaches every route, as on AWS.
            assert_eq!(ctx["authorizer"]["user_id"], "3");
            // The functions read it back as the same type.
            let parsed: ApiGatewayWebsocketProxyRequest =
                serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("{route}: {e}"));
            assert_eq!(parsed.request_context.route_key.as_deref(), Some(route));
            if route == "$connect" {
                assert_eq!(parsed.query_string_parameters.first("group_id"), Some("2"));
                assert_eq!(event["headers"]["host"], "localhost:8000");
            } else {
                assert!(parsed.query_string_parameters.first("group_id").is_none());
            }
        }
        let text = route_event(&info(), "$default", Some((&b"hi"[..], false)));
        assert_eq!(text.body.as_deref(), Some("hi"));
        let binary = route_event(&info(), "$default", Some((&[0xff][..], true)));
        assert!(binary.is_base64_encoded);
        assert_eq!(binary.body.as_deref(), Some("/w=="));
    }

    #[test]
    fn connection_ids_are_unique_and_url_safe_enough() {
        let a = new_connection_id();
        assert_ne!(a, new_connection_id());
        assert!(!a.contains('/'));
    }
}
