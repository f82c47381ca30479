//! The HTTP API (payload format 2.0) event API Gateway sends a function, and reading the
//! function's reply back into HTTP.

use base64::Engine;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// What the emulator knows of one incoming request.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub raw_query: &'a str,
    /// Names as received; API Gateway lowercases them.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    pub route_key: String,
    pub path_parameters: Vec<(String, String)>,
    pub source_ip: String,
}

pub fn http_api_event(request: &Incoming) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| Value::from(c.trim())));
            continue;
        }
        // Repeated headers are joined with commas.
        match headers.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                headers.insert(name, Value::from(value.as_str()));
            }
        }
    }
    let mut query = Map::new();
    for (name, value) in form_urlencoded::parse(request.raw_query.as_bytes()) {
        match query.get_mut(name.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                query.insert(name.into_owned(), Value::from(value.into_owned()));
            }
        }
    }
    let (body, base64) = match std::str::from_utf8(request.body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(request.body),
            true,
        ),
    };
    let host = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("localhost")
        .to_owned();
    let now = Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": request.route_key,
        "rawPath": request.path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or("localhost"),
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent").and_then(Value::as_str).unwrap_or(""),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": request.route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": base64,
    });
    let object = event.as_object_mut().expect("a JSON object");
    if !cookies.is_empty() {
        object.insert("cookies".into(), Value::Array(cookies));
    }
    if !query.is_empty() {
        object.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !request.path_parameters.is_empty() {
        let params: Map<String, Value> = request
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        object.insert("pathParameters".into(), Value::Object(params));
    }
    if !request.body.is_empty() {
        object.insert("body".into(), Value::from(body));
    }
    event
}

/// A function's reply in payload format 2.0.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionReply {
    pub status_code: u16,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub multi_value_headers: Map<String, Value>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
    #[serde(default)]
    pub cookies: Vec<String>,
}

impl FunctionReply {
    pub fn body_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        let body = self.body.as_deref().unwrap_or_default();
        if self.is_base64_encoded {
            base64::engine::general_purpose::STANDARD.decode(body)
        } else {
            Ok(body.as_bytes().to_vec())
        }
    }

    /// Every header as (name, value) pairs; multi-value headers expanded.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for (name, value) in &self.headers {
            if let Some(v) = value.as_str() {
                pairs.push((name.clone(), v.to_owned()));
            }
        }
        for (name, values) in &self.multi_value_headers {
            if self.headers.contains_key(name) {
                continue;
            }
            for v in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                pairs.push((name.clone(), v.to_owned()));
            }
        }
        for cookie in &self.cookies {
            pairs.push(("set-cookie".into(), cookie.clone()));
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
    use lambda_http::RequestExt;

    fn incoming(body: &[u8]) -> Incoming<'_> {
        Incoming {
            method: "PUT",
            path: "/edit-message/7",
            raw_query: "user_id=1&new_text=hello+w%C3%B6rld&tag=a&tag=b",
            headers: vec![
                ("Host".into(), "localhost:8000".into()),
                ("Content-Type".into(), "application/json".into()),
                ("X-Repeated".into(), "1".into()),
                ("x-repeated".into(), "2".into()),
                ("Cookie".into(), "a=1; b=2".into()),
            ],
            body,
            route_key: "PUT /edit-message/{message_id}".into(),
            path_parameters: vec![("message_id".into(), "7".into())],
            source_ip: "127.0.0.1".into(),
        }
    }

    #[test]
    fn the_event_deserializes_as_aws_lambda_events_http_api_request() {
        let event = http_api_event(&incoming(br#"{"x":1}"#));
        let parsed: ApiGatewayV2httpRequest =
            serde_json::from_value(event.clone()).expect("an HTTP API v2 event");
        assert_eq!(
            parsed.route_key.as_deref(),
            Some("PUT /edit-message/{message_id}")
        );
        assert_eq!(parsed.raw_path.as_deref(), Some("/edit-message/7"));
        assert_eq!(
            parsed.path_parameters.get("message_id").map(String::as_str),
            Some("7")
        );
        assert_eq!(parsed.headers["x-repeated"], "1,2");
        assert_eq!(parsed.cookies, Some(vec!["a=1".into(), "b=2".into()]));
        assert_eq!(parsed.request_context.http.method.as_str(), "PUT");
        assert!(!parsed.is_base64_encoded);
        assert_eq!(parsed.body.as_deref(), Some(r#"{"x":1}"#));
    }

    #[test]
    fn lambda_http_sees_the_same_request() {
        let event = http_api_event(&incoming(b"{}"));
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("lambda_http parses it");
        assert_eq!(request.method(), "PUT");
        assert_eq!(request.path_parameters().first("message_id"), Some("7"));
        let query = request.query_string_parameters();
        assert_eq!(query.first("new_text"), Some("hello wörld"));
        assert_eq!(query.first("user_id"), Some("1"));
    }

    #[test]
    fn a_binary_body_is_sent_base64_encoded() {
        let event = http_api_event(&incoming(&[0xff, 0x00, 0x41]));
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "/wBB");
    }

    #[test]
    fn a_reply_with_base64_body_and_multi_value_headers_is_read_back() {
        let reply: FunctionReply = serde_json::from_value(json!({
            "statusCode": 202,
            "headers": {"content-type": "application/json"},
            "multiValueHeaders": {"content-type": ["application/json"], "x-a": ["1", "2"]},
            "body": "eyJvayI6dHJ1ZX0=",
            "isBase64Encoded": true,
            "cookies": ["s=1"]
        }))
        .expect("reply");
        assert_eq!(reply.body_bytes().expect("base64"), br#"{"ok":true}"#);
        let headers = reply.header_pairs();
        assert_eq!(
            headers.iter().filter(|(n, _)| n == "content-type").count(),
            1
        );
        assert_eq!(headers.iter().filter(|(n, _)| n == "x-a").count(), 2);
        assert!(headers.contains(&("set-cookie".into(), "s=1".into())));
    }
}
