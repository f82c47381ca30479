//! The gateway in process: requests go straight into `local_apigw::app`'s router, and the
//! functions behind it are a stub of the Lambda Invoke API that answers with what it was sent.
//! It needs the stack's expanded template (`make test` exports `LOCAL_IAM_TEMPLATE`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path};
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::Router;
use local_apigw::gateway::{Gateway, Settings};
use serde_json::{json, Value};
use tower::ServiceExt;

/// A Lambda Invoke API whose every function replies with the event's route and path.
async fn stub_functions() -> String {
    async fn invoke(Path(function): Path<String>, body: String) -> String {
        let event: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let echo = json!({
            "function": function,
            "routeKey": event["routeKey"],
            "rawPath": event["rawPath"],
            "pathParameters": event["pathParameters"],
        });
        json!({"statusCode": 200, "headers": {"content-type": "application/json"},
               "multiValueHeaders": {}, "cookies": [], "isBase64Encoded": false,
               "body": echo.to_string()})
        .to_string()
    }
    let app = Router::new().route("/2015-03-31/functions/{function}/invocations", post(invoke));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn gateway() -> axum::Router {
    let mut settings = Settings::from_env(false).unwrap_or_else(|e| {
        panic!("{e}: run these tests with `make test`, which expands the template and exports it")
    });
    settings.invoke_url = stub_functions().await;
    let gateway = Gateway::new(settings).expect("gateway");
    local_apigw::app(Arc::new(gateway), false)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 50000))));
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24).await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn routes_of_routes_json_reach_their_function_with_the_route_key() {
    let app = gateway().await;
    let (status, _, body) = call(&app, "GET", "/users/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["function"].as_str(),
            body["routeKey"].as_str(),
            body["rawPath"].as_str()
        ),
        (Some("list-users"), Some("GET /users"), Some("/users/"))
    );
    let (_, _, body) = call(&app, "GET", "/messages/7?limit=2").await;
    assert_eq!(body["function"], "get-messages");
    assert_eq!(body["pathParameters"]["group_id"], "7");
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths_are_json_errors() {
    let app = gateway().await;
    let (status, headers, body) = call(&app, "POST", "/users").await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(headers["allow"], "GET");
    let (status, _, body) = call(&app, "GET", "/no/such/route").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn the_page_is_served_where_no_route_matches_and_every_response_has_the_headers() {
    let app = gateway().await;
    let (status, headers, _) = call(&app, "GET", "/").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html")));
    for uri in ["/", "/users/", "/no/such/route"] {
        let (_, headers, _) = call(&app, "GET", uri).await;
        assert_eq!(headers["x-content-type-options"], "nosniff", "{uri}");
    }
}

#[tokio::test]
async fn the_management_api_refuses_unsigned_calls_and_other_stages() {
    let app = gateway().await;
    for uri in ["/live/@connections/abc=", "/prod/@connections/abc="] {
        let (status, _, body) = call(&app, "POST", uri).await;
        assert_eq!(status, 403, "{uri}: {body}");
    }
}

#[tokio::test]
async fn without_an_issuer_there_are_no_keys_and_a_plain_get_of_a_socket_path_is_no_socket() {
    let app = gateway().await;
    let (status, _, _) = call(&app, "GET", "/auth/.well-known/jwks.json").await;
    assert_eq!(status, 404);
    let (status, _, body) = call(&app, "GET", "/subscribe/1").await;
    assert_eq!(status, 404, "{body}");
}

#[test]
fn only_loopback_addresses_are_loopback() {
    for (listen, loopback) in [
        ("127.0.0.1:8000", true),
        ("127.0.0.2:8000", true),
        ("localhost:8000", true),
        ("[::1]:8000", true),
        ("0.0.0.0:8000", false),
        ("[::]:8000", false),
        ("192.168.1.5:8000", false),
        ("chat.example.com:8000", false),
    ] {
        assert_eq!(local_apigw::is_loopback(listen), loopback, "{listen}");
    }
}

/// The client is still writing when the gateway knows the body is too large: the 413 must reach
/// it all the same, not a connection reset (hostile_input's 11 MiB case met one in CI).
#[tokio::test]
async fn an_oversized_body_still_being_written_gets_its_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = gateway().await;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let size = 11 * 1024 * 1024;
    let mut client = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = format!(
        "POST /send-message/ HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {size}\r\nconnection: close\r\n\r\n"
    );
    client.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'x'; 512 * 1024];
    for sent in 0..22 {
        // Past the limit (10.5 MiB), pause: the gateway has its answer by now and must keep
        // reading.
        if sent == 21 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        client
            .write_all(&chunk)
            .await
            .unwrap_or_else(|e| panic!("the gateway stopped reading after {sent} half MiB: {e}"));
    }
    let mut reply = String::new();
    client
        .read_to_string(&mut reply)
        .await
        .unwrap_or_else(|e| panic!("no reply to an oversized body, {e}"));
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply:.300}");
    assert!(reply.contains(r#"{"error":"#), "{reply:.300}");
}
