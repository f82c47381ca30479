//! A corpus of hostile requests: none may get a 5xx, every reply is JSON, and every refusal
//! says why.

use e2e_tests::{api_url, http};
use reqwest::Method;

fn corpus() -> Vec<(Method, String, Option<&'static str>, Vec<u8>)> {
    let json = Some("application/json");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(5_000), "}".repeat(5_000));
    let mut cases = vec![
        (
            Method::POST,
            "/send-message/".into(),
            json,
            vec![b'x'; 11 * 1024 * 1024],
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            format!(r#"{{"user_id":1,"message":"{}"}}"#, "a".repeat(5_000_000)).into_bytes(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            deep.into_bytes(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            deep_object.into_bytes(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            br#"{"user_id": true, "message": []}"#.to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            br#"{"user_id": 1.5, "message": "x"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            br#"{"user_id": -9223372036854775809, "message": "x"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            br#"{"user_id": 1e999, "message": "x"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            br#"{"user_id": 1, "message": "\ud800"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            b"{\"user_id\": 1, \"message\": \"\xff\xfe\"}".to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            br#"{"user_id": 1, "message": "\u0000\u001b[31m"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            "{\"user_id\": 1, \"message\": \"\u{202e}\u{fe0f}😀 مرحبا\"}"
                .as_bytes()
                .to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            br#"{"user_id": 1, "message": "x", "group_id": "1; DROP TABLE"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            br#"{"user_id": 1, "message": "x", "client_message_id": 5}"#.to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            Some("text/html"),
            b"<script>".to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            None,
            b"\x00\x01\x02".to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            b"null".to_vec(),
        ),
        (
            Method::POST,
            "/send-message/".into(),
            json,
            b"\"just a string\"".to_vec(),
        ),
        (Method::GET, "/messages/-1".into(), None, vec![]),
        (
            Method::GET,
            "/messages/99999999999999999999999999".into(),
            None,
            vec![],
        ),
        (
            Method::GET,
            "/messages/1?limit=-1&before=abc".into(),
            None,
            vec![],
        ),
        (
            Method::GET,
            "/messages/1?limit=99999999999999999999".into(),
            None,
            vec![],
        ),
        (Method::GET, "/messages/%2e%2e%2fusers".into(), None, vec![]),
        (
            Method::GET,
            "/messages/..%2F..%2Fetc%2Fpasswd".into(),
            None,
            vec![],
        ),
        (Method::GET, "/messages/%00".into(), None, vec![]),
        (
            Method::GET,
            "/messages/1%0d%0aX-Injected:%201".into(),
            None,
            vec![],
        ),
        (Method::GET, "/../users/".into(), None, vec![]),
        (
            Method::GET,
            "/messages/1?before=1&before=2&after=%FF".into(),
            None,
            vec![],
        ),
        (
            Method::PUT,
            "/edit-message/1?user_id=1&new_text=%00".into(),
            None,
            vec![],
        ),
        (
            Method::PUT,
            "/edit-message/0?user_id=0&new_text=x".into(),
            None,
            vec![],
        ),
        (
            Method::PUT,
            "/edit-message/9007199254740992?user_id=1&new_text=x".into(),
            None,
            vec![],
        ),
        (
            Method::PUT,
            "/edit-message/1".into(),
            json,
            br#"{"user_id": {"$gt": 0}, "new_text": "x"}"#.to_vec(),
        ),
        (
            Method::DELETE,
            "/delete-message/1?user_id=1&user_id=2".into(),
            None,
            vec![],
        ),
        (
            Method::DELETE,
            "/delete-message/%F0%9F%98%80?user_id=1".into(),
            None,
            vec![],
        ),
        (Method::PATCH, "/users/".into(), None, vec![]),
        (Method::OPTIONS, "/send-message/".into(), None, vec![]),
    ];
    let long_path = format!("/messages/{}", "9".repeat(6_000));
    cases.push((Method::GET, long_path, None, vec![]));
    cases
}

#[tokio::test]
async fn no_hostile_request_gets_a_server_error() {
    let base = api_url();
    for (method, path, content_type, body) in corpus() {
        let mut request = http().request(method.clone(), format!("{base}{path}"));
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let size = body.len();
        let response = request
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path:.60}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_client_error() || status.is_success(),
            "{method} {:.80} ({size} bytes) got {status}: {text:.200}",
            path
        );
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path:.60}: not JSON: {text:.200}"));
        if status.is_client_error() {
            assert!(json["error"].is_string(), "{json}");
        }
    }
}
