//! Helpers for the HTTP functions: reading a request the way API Gateway (HTTP API, payload
//! 2.0) delivers it, and turning results into JSON replies. Every reply goes through
//! [`reply`], so no handler can answer with anything but JSON, and no error leaks internals.

use std::str::FromStr;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use chat_core::domain::{MessageId, ValidationError};
use chat_core::error::ChatError;
use chat_core::events::ChatEvent;
use chat_core::publish::{publish_event, Publisher};

/// Largest request body accepted; a message of 4096 characters fits many times over.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// Publishes a change its handler has checked (an edit or a delete) to the chat topic, and
/// answers `202` with `{"status": status, "message_id": ...}`: the stream processor applies it.
pub async fn publish_accepted(
    publisher: &dyn Publisher,
    topic: &str,
    event: &ChatEvent,
    status: &str,
    message_id: MessageId,
) -> Result<Response<Body>, ChatError> {
    publish_event(publisher, topic, event, None).await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({"status": status, "message_id": message_id}),
    ))
}

/// A JSON reply.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The JSON reply for an error; server errors are logged with their cause, which the client
/// never sees.
pub fn error_response(error: &ChatError) -> Response<Body> {
    if error.is_server_error() {
        tracing::error!(status = error.status(), cause = %error, "request failed");
    } else {
        tracing::info!(status = error.status(), reason = %error, "request refused");
    }
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(
        status,
        &serde_json::json!({ "error": error.public_message() }),
    );
    if let Some(seconds) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Turns a handler's result into the reply. Handlers return `Ok` from Lambda's point of view
/// always: an error is an HTTP status, never a failed invocation.
pub fn reply(result: Result<Response<Body>, ChatError>) -> Response<Body> {
    result.unwrap_or_else(|e| error_response(&e))
}

/// Refuses a method the route does not serve (API Gateway routes by method too; this keeps a
/// misrouted request from doing anything).
pub fn require_method(request: &Request, allowed: &Method) -> Result<(), ChatError> {
    if request.method() == allowed {
        Ok(())
    } else {
        Err(ChatError::MethodNotAllowed(format!(
            "{} is not allowed here; use {allowed}",
            request.method()
        )))
    }
}

/// A path parameter, parsed; a malformed one is a 400 naming it.
pub fn path_param<T>(request: &Request, name: &str) -> Result<T, ChatError>
where
    T: FromStr<Err = ValidationError>,
{
    let params = request.path_parameters();
    let raw = params
        .first(name)
        .ok_or_else(|| ChatError::NotFound(format!("no {name} in the path")))?;
    Ok(raw.parse()?)
}

/// The first value of a query-string parameter.
pub fn query_param(request: &Request, name: &str) -> Option<String> {
    request
        .query_string_parameters_ref()
        .and_then(|q| q.first(name).map(str::to_owned))
}

/// A query-string parameter parsed with `FromStr`; absent is `None`, malformed is a 400.
pub fn parse_query<T>(request: &Request, name: &str) -> Result<Option<T>, ChatError>
where
    T: FromStr<Err = ValidationError>,
{
    query_param(request, name)
        .map(|v| v.parse::<T>().map_err(ChatError::from))
        .transpose()
}

/// Refuses `names` as query parameters when the original app's way of passing them is turned
/// off (`COMPAT_OFF=query-parameters`, see `chat_core::compat`): the JSON body is the API's.
pub fn refuse_query_parameters_unless(
    allowed: bool,
    request: &Request,
    names: &[&str],
) -> Result<(), ChatError> {
    match names.iter().find(|n| query_param(request, n).is_some()) {
        Some(name) if !allowed => Err(ChatError::BadRequest(format!(
            "{name} as a query parameter is turned off here (COMPAT_OFF=query-parameters): \
             send it in the JSON body"
        ))),
        _ => Ok(()),
    }
}

/// A value that may come from the query string (as the original app took it) or from the
/// JSON body; both may be given only if they agree.
pub fn query_or_body<T: PartialEq>(
    name: &str,
    from_query: Option<T>,
    from_body: Option<T>,
) -> Result<T, ChatError> {
    optional_query_or_body(name, from_query, from_body)?.ok_or_else(|| {
        ChatError::BadRequest(format!("{name} is required (query parameter or JSON body)"))
    })
}

/// As [`query_or_body`], for a value that may be absent from both.
pub fn optional_query_or_body<T: PartialEq>(
    name: &str,
    from_query: Option<T>,
    from_body: Option<T>,
) -> Result<Option<T>, ChatError> {
    match (from_query, from_body) {
        (Some(q), Some(b)) if q != b => Err(ChatError::BadRequest(format!(
            "{name} differs between the query string and the body; give it once"
        ))),
        (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
        (None, None) => Ok(None),
    }
}

/// The request body as UTF-8 text, or `None` when there is none. Enforces the size limit.
pub fn body_text(request: &Request) -> Result<Option<&str>, ChatError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => return Ok(None),
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => return Ok(None),
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ChatError::PayloadTooLarge(format!(
            "request body is {} bytes; the limit is {MAX_BODY_BYTES}",
            bytes.len()
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    std::str::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ChatError::BadRequest("request body is not valid UTF-8".into()))
}

/// The JSON body decoded as `T`, or `None` when the request has no body. A body must be
/// declared JSON (`Content-Type: application/json` or `…+json`), else it is a 415, a missing
/// type included: a web page can post `text/plain`, a form or an untyped blob to another
/// origin without asking first, never JSON, so this is what keeps a page the user visits from
/// acting as them (FastAPI, the original app's framework, checks the same). Malformed JSON or
/// a wrong field is a 400 that says what.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<Option<T>, ChatError> {
    let Some(text) = body_text(request)? else {
        return Ok(None);
    };
    let declared = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| {
            let media = value.to_str().unwrap_or_default();
            media
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if declared != "application/json" && !declared.ends_with("+json") {
        let declared = if declared.is_empty() {
            "none".to_owned()
        } else {
            format!("`{declared}`")
        };
        return Err(ChatError::UnsupportedMediaType(format!(
            "the body must be sent as JSON (Content-Type: application/json); its type is \
             {declared}"
        )));
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| ChatError::BadRequest(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::error::Service;
    use lambda_http::http;

    fn request(content_type: Option<&str>, body: Body) -> Request {
        let mut builder = http::Request::builder().method("POST").uri("/x");
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(body).expect("request")
    }

    #[derive(serde::Deserialize, Debug)]
    struct Payload {
        #[allow(dead_code)]
        a: u8,
    }

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn a_body_declared_json_is_decoded() {
        for ct in [
            JSON,
            Some("application/json; charset=utf-8"),
            Some("Application/JSON"),
            Some("application/merge-patch+json"),
        ] {
            let r = request(ct, Body::Text(r#"{"a": 1}"#.into()));
            assert!(
                json_body::<Payload>(&r).expect("decodes").is_some(),
                "{ct:?}"
            );
        }
        for ct in [None, JSON, Some("text/plain")] {
            let r = request(ct, Body::Empty);
            assert!(json_body::<Payload>(&r).expect("no body").is_none());
        }
    }

    #[test]
    fn bad_bodies_get_the_right_status() {
        let json = || Body::Text(r#"{"a": 1}"#.into());
        let cases = [
            // What a web page may post to another origin without asking first.
            (None, json(), 415),
            (Some("text/plain"), json(), 415),
            (Some("text/plain;charset=UTF-8"), json(), 415),
            (Some("application/x-www-form-urlencoded"), json(), 415),
            (Some("multipart/form-data; boundary=x"), json(), 415),
            (Some("text/plain"), Body::Text("hello".into()), 415),
            (JSON, Body::Text("{".into()), 400),
            (JSON, Body::Text(r#"{"a": "one"}"#.into()), 400),
            (JSON, Body::Text(r#"{"a": 1"#.into()), 400),
            (JSON, Body::Binary(vec![0xff, 0xfe]), 400),
            (
                JSON,
                Body::Text(format!(
                    r#"{{"a": 1, "pad": "{}"}}"#,
                    "x".repeat(MAX_BODY_BYTES)
                )),
                413,
            ),
            (
                JSON,
                Body::Text(format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000))),
                400,
            ),
        ];
        for (ct, body, status) in cases {
            let err = json_body::<Payload>(&request(ct, body)).expect_err("refused");
            assert_eq!(err.status(), status, "{ct:?}: {err}");
        }
    }

    #[test]
    fn error_replies_are_json_and_503s_say_when_to_retry() {
        let r = error_response(&ChatError::Unavailable {
            service: Service::Kafka,
            cause: "secret detail".into(),
        });
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        match r.body() {
            Body::Text(t) => assert!(!t.contains("secret") && t.contains("\"error\"")),
            other => panic!("unexpected body {other:?}"),
        }
    }
}
