//! The HTTP API: a request becomes the payload-2.0 event API Gateway sends a function
//! (`aws_lambda_events`' `ApiGatewayV2httpRequest`), and the function's reply
//! (`ApiGatewayV2httpResponse`) becomes the response.

use std::collections::HashMap;
use std::net::SocketAddr;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::query_map::QueryMap;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use chrono::Utc;
use futures_util::StreamExt;

use crate::gateway::Gateway;
use crate::reply::json_error;
use crate::routes::{find, Match};

/// API Gateway's HTTP API payload limit.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// How much of an oversized body is read and dropped before the 413 is sent.
const MAX_DRAINED_BYTES: usize = 64 * 1024 * 1024;

/// The body, or `None` when it is over the limit. An oversized body is read on (up to
/// `MAX_DRAINED_BYTES`) and dropped: answering while the client still writes makes the server
/// close the connection under it, and the client then sees a reset instead of the 413.
async fn read_payload(body: Body) -> Option<axum::body::Bytes> {
    let mut stream = body.into_data_stream();
    let mut payload = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return None };
        seen += chunk.len();
        if seen > MAX_DRAINED_BYTES {
            return None;
        }
        if seen <= MAX_PAYLOAD_BYTES {
            payload.extend_from_slice(&chunk);
        }
    }
    (seen <= MAX_PAYLOAD_BYTES).then(|| payload.into())
}

pub async fn handle(
    gateway: &Gateway,
    request: Request,
    peer: SocketAddr,
    verify: bool,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (route, path_parameters) = match find(&gateway.routes, method.as_str(), &path) {
        Match::Found { route, parameters } => (route.clone(), parameters),
        Match::WrongMethod { allowed } => {
            let allow = allowed.join(", ");
            let mut response = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not allowed on {path}; use {allow}"),
            );
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return response;
        }
        Match::NotFound => {
            if let Some((file, kind)) = crate::web::find(&method, &path) {
                return crate::web::serve(&gateway.web_root, &file, kind, method == Method::HEAD)
                    .await;
            }
            return json_error(
                StatusCode::NOT_FOUND,
                &format!("no route for {method} {path}"),
            );
        }
    };
    // As on AWS, the authorizer runs once a route matched, before the body is read.
    let claims = match (&gateway.auth, verify) {
        (Some(auth), true) => match auth.bearer(request.headers()).await {
            Ok(claims) => Some(claims),
            Err(refusal) => return refusal,
        },
        _ => None,
    };
    let raw_query = request.uri().query().unwrap_or_default().to_owned();
    let (parts, body) = request.into_parts();
    let body = match read_payload(body).await {
        Some(body) => body,
        None => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over the {MAX_PAYLOAD_BYTES}-byte limit"),
            )
        }
    };
    let mut event = http_api_event(&Incoming {
        method: &parts.method,
        path: &path,
        raw_query: &raw_query,
        headers: &parts.headers,
        body: &body,
        route_key: format!("{} {}", route.method, route.path),
        path_parameters,
        source_ip: peer.ip().to_string(),
    });
    if let Some(claims) = claims {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims;
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        event.request_context.authorizer = Some(authorizer);
    }
    match gateway
        .invoker
        .invoke::<_, ApiGatewayV2httpResponse>(&route.function, &event)
        .await
    {
        Ok(reply) => response_of(&route.function, reply),
        Err(failure) => failure,
    }
}

/// What the emulator knows of one incoming request.
pub struct Incoming<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub route_key: String,
    pub path_parameters: Vec<(String, String)>,
    pub source_ip: String,
}

/// The event of an HTTP API route, as API Gateway builds it: header names lowercased and
/// repeated headers joined with commas, cookies apart, query parameters decoded, a body that
/// is not UTF-8 base64-encoded.
pub fn http_api_event(request: &Incoming) -> ApiGatewayV2httpRequest {
    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    for name in request.headers.keys() {
        let values: Vec<String> = request
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == header::COOKIE {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(|c| c.trim().to_owned()),
            );
        } else if let Ok(value) = HeaderValue::from_str(&values.join(",")) {
            headers.insert(name.clone(), value);
        }
    }
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in form_urlencoded::parse(request.raw_query.as_bytes()) {
        query
            .entry(name.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    let (body, base64) = match std::str::from_utf8(request.body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(request.body),
            true,
        ),
    };
    let host = header_text(&headers, header::HOST)
        .unwrap_or("localhost")
        .to_owned();
    let now = Utc::now();

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = request.method.clone();
    http.path = Some(request.path.to_owned());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some(request.source_ip.clone());
    http.user_agent = Some(
        header_text(&headers, header::USER_AGENT)
            .unwrap_or("")
            .into(),
    );

    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(request.route_key.clone());
    context.account_id = Some("000000000000".into());
    context.stage = Some("$default".into());
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.apiid = Some("local".into());
    context.domain_prefix = Some(host.split('.').next().unwrap_or("localhost").into());
    context.domain_name = Some(host);
    context.time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    context.time_epoch = now.timestamp_millis();
    context.http = http;

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(request.route_key.clone());
    event.raw_path = Some(request.path.to_owned());
    event.raw_query_string = Some(request.raw_query.to_owned());
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.query_string_parameters = QueryMap::from(query);
    event.path_parameters = request.path_parameters.iter().cloned().collect();
    event.request_context = context;
    event.body = (!request.body.is_empty()).then_some(body);
    event.is_base64_encoded = base64;
    event
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The response for a function's reply: its status, headers (multi-value ones expanded,
/// cookies as `Set-Cookie`) and body (base64-decoded when so marked).
pub fn response_of(function: &str, reply: ApiGatewayV2httpResponse) -> Response {
    let body = match reply.body {
        None => Vec::new(),
        Some(EventBody::Text(text)) if reply.is_base64_encoded => {
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => bytes,
                Err(_) => {
                    tracing::error!(function, "reply body marked base64 is not base64");
                    return json_error(
                        StatusCode::BAD_GATEWAY,
                        "the function sent a malformed reply",
                    );
                }
            }
        }
        Some(EventBody::Text(text)) => text.into_bytes(),
        Some(EventBody::Binary(bytes)) => bytes,
        Some(_) => Vec::new(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = u16::try_from(reply.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in &reply.headers {
        headers.append(name, value.clone());
    }
    for name in reply.multi_value_headers.keys() {
        if reply.headers.contains_key(name) {
            continue;
        }
        for value in reply.multi_value_headers.get_all(name) {
            headers.append(name, value.clone());
        }
    }
    for cookie in &reply.cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;

    fn incoming<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Incoming<'a> {
        Incoming {
            method: &Method::PUT,
            path: "/edit-message/7",
            raw_query: "user_id=1&new_text=hello+w%C3%B6rld&tag=a&tag=b",
            headers,
            body,
            route_key: "PUT /edit-message/{message_id}".into(),
            path_parameters: vec![("message_id".into(), "7".into())],
            source_ip: "127.0.0.1".into(),
        }
    }

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("localhost:8000"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.append("x-repeated", HeaderValue::from_static("1"));
        h.append("x-repeated", HeaderValue::from_static("2"));
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h
    }

    #[test]
    fn the_event_is_api_gateways_http_api_request() {
        let headers = headers();
        let event = serde_json::to_value(http_api_event(&incoming(&headers, br#"{"x":1}"#)))
            .expect("serializes");
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "PUT /edit-message/{message_id}");
        assert_eq!(event["rawPath"], "/edit-message/7");
        assert_eq!(event["pathParameters"]["message_id"], "7");
        assert_eq!(event["headers"]["x-repeated"], "1,2");
        assert_eq!(event["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(event["requestContext"]["http"]["method"], "PUT");
        assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["body"], r#"{"x":1}"#);
    }

    #[test]
    fn lambda_http_sees_the_same_request() {
        let headers = headers();
        let event =
            serde_json::to_string(&http_api_event(&incoming(&headers, b"{}"))).expect("serializes");
        let request = lambda_http::request::from_str(&event).expect("lambda_http parses it");
        assert_eq!(request.method(), "PUT");
        assert_eq!(request.path_parameters().first("message_id"), Some("7"));
        let query = request.query_string_parameters();
        assert_eq!(query.first("new_text"), Some("hello wörld"));
        assert_eq!(query.first("user_id"), Some("1"));
        assert_eq!(query.all("tag"), Some(vec!["a", "b"]));
    }

    #[test]
    fn a_binary_body_is_sent_base64_encoded() {
        let headers = HeaderMap::new();
        let event = http_api_event(&incoming(&headers, &[0xff, 0x00, 0x41]));
        assert!(event.is_base64_encoded);
        assert_eq!(event.body.as_deref(), Some("/wBB"));
    }

    #[test]
    fn a_reply_with_base64_body_and_multi_value_headers_is_read_back() {
        let reply: ApiGatewayV2httpResponse = serde_json::from_value(serde_json::json!({
            "statusCode": 202,
            "headers": {"content-type": "application/json"},
            "multiValueHeaders": {"content-type": ["application/json"], "x-a": ["1", "2"]},
            "body": "eyJvayI6dHJ1ZX0=",
            "isBase64Encoded": true,
            "cookies": ["s=1"]
        }))
        .expect("reply");
        let response = response_of("f", reply);
        assert_eq!(response.status(), 202);
        let headers = response.headers();
        assert_eq!(headers.get_all("content-type").iter().count(), 1);
        assert_eq!(headers.get_all("x-a").iter().count(), 2);
        assert_eq!(headers["set-cookie"], "s=1");
    }
}
