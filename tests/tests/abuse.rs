//! What a web page or a signed-in user may try against the local stack, and how it is refused
//! (black box: through the gateway and DynamoDB Local as a browser or a client reaches them).
//! - A page of another site posting JSON as `text/plain`, a form, multipart or an untyped
//!   blob (what a browser sends cross-origin without asking first): `415`, nothing stored, on
//!   the trust-client address and the token-verifying one alike.
//! - A page of another site opening a WebSocket: refused before `$connect` runs.
//! - A page of another site calling DynamoDB Local: no CORS grant.

use std::time::Duration;

use chat_testkit::services::require_env;
use e2e_tests::{
    api_url, eventually, fresh_user, history, http, jwt_api_url, local_issuer, ws_url,
};
use reqwest::header::{CONTENT_TYPE, ORIGIN};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

/// What a browser sends to another origin without a preflight: every type but JSON's.
const SIMPLE_TYPES: [Option<&str>; 5] = [
    None,
    Some("text/plain"),
    Some("text/plain;charset=UTF-8"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=xyz"),
];

#[tokio::test]
async fn json_posted_as_a_page_of_another_site_can_is_refused_and_nothing_is_stored() {
    let user = fresh_user(true).await;
    let token = local_issuer().token(user.user_id, Duration::from_secs(3600));
    let drive_by = format!("drive-by {}", uuid::Uuid::new_v4());
    for (base, token) in [(api_url(), None), (jwt_api_url(), Some(token.as_str()))] {
        for content_type in SIMPLE_TYPES {
            for (method, path) in [
                (reqwest::Method::POST, "/send-message/".to_owned()),
                (reqwest::Method::POST, "/groups".to_owned()),
                (reqwest::Method::PUT, "/edit-message/1".to_owned()),
            ] {
                let body = json!({"user_id": user.user_id, "message": drive_by,
                                  "name": drive_by, "new_text": drive_by});
                let mut request = http()
                    .request(method.clone(), format!("{base}{path}"))
                    .header(ORIGIN, "https://evil.example")
                    .body(body.to_string());
                if let Some(content_type) = content_type {
                    request = request.header(CONTENT_TYPE, content_type);
                }
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.expect("request");
                let status = response.status().as_u16();
                let reply: serde_json::Value = response.json().await.unwrap_or_default();
                assert_eq!(
                    status, 415,
                    "{method} {base}{path} as {content_type:?}: {reply}"
                );
                assert!(reply["error"].as_str().is_some_and(|e| e.contains("JSON")));
            }
        }
    }
    // The same body declared JSON goes through; nothing of the refused ones was stored.
    let marker = format!("marker {}", uuid::Uuid::new_v4());
    let sent = http()
        .post(format!("{}/send-message/", api_url()))
        .json(&json!({"user_id": user.user_id, "message": marker}))
        .send()
        .await
        .expect("send");
    assert_eq!(sent.status().as_u16(), 202);
    eventually("the marker is stored", || async {
        history(user.group_id)
            .await
            .iter()
            .any(|m| m.message.as_str() == marker)
    })
    .await;
    assert!(history(user.group_id)
        .await
        .iter()
        .all(|m| m.message.as_str() != drive_by));
}

/// The handshake's status with `origin` (`None`: no Origin header, as a non-browser client).
async fn handshake(path: &str, origin: Option<&str>) -> u16 {
    let mut request = ws_url(path).into_client_request().expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake: {e}"),
    }
}

#[tokio::test]
async fn only_the_gateways_own_page_opens_sockets_from_a_browser() {
    let own = api_url();
    let path = "/?group_id=1";
    assert_eq!(handshake(path, Some("https://evil.example")).await, 403);
    assert_eq!(handshake(path, Some("null")).await, 403, "a sandboxed page");
    assert_eq!(handshake(path, Some(&own)).await, 101, "the page at {own}");
    assert_eq!(
        handshake(path, None).await,
        101,
        "a client that is not a browser"
    );
}

#[tokio::test]
async fn dynamodb_local_grants_no_web_page_cross_origin_access() {
    let endpoint = require_env("CHAT_DYNAMODB_LOCAL_ENDPOINT");
    let preflight = http()
        .request(reqwest::Method::OPTIONS, &endpoint)
        .header(ORIGIN, "https://evil.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-amz-target,authorization",
        )
        .send()
        .await
        .expect("preflight");
    let granted = preflight
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        granted != "*" && granted != "https://evil.example",
        "DynamoDB Local let another site's page in: {granted:?}"
    );
}
