//! The two shapes of an error reply: ours (`{"error": ...}`, as the functions answer) and API
//! Gateway's own refusals (`{"message": ...}`).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `{"error": message}` with `status`, as every error of ours is answered.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let mut response =
        (status, serde_json::json!({ "error": message }).to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"message": text}`: the shape of API Gateway's own refusals.
pub fn message(status: StatusCode, text: &str) -> Response {
    let mut response = Response::new(Body::from(
        serde_json::json!({ "message": text }).to_string(),
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
