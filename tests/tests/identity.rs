//! Identity in `jwt` mode, black-box through the emulator's token-verifying address: every
//! route and `$connect` with no token, bad tokens of every kind, a valid token of a user who is
//! not a member, and a member's; impersonation refused; the per-user socket limit.

use std::time::Duration;

use base64::Engine;
use chat_auth::LocalIssuer;
use chat_core::domain::User;
use chat_core::domain::USER_ID_CLAIM;
use e2e_tests::{fresh_user, jwt_api_url, local_issuer};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const HOUR: Duration = Duration::from_secs(3600);

/// Tokens that must all be refused with 401, by name.
fn bad_tokens(issuer: &LocalIssuer, user: &User) -> Vec<(&'static str, Option<String>)> {
    let now = chrono::Utc::now().timestamp();
    let claims = |changes: Value| {
        let mut c = json!({
            "iss": issuer.issuer, "aud": issuer.audience, "exp": now + 600, "iat": now,
            USER_ID_CLAIM: user.user_id.to_string(),
        });
        for (k, v) in changes.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let valid = issuer.token(user.user_id, HOUR);
    let kid = valid.split('.').next().map(|h| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .expect("header");
        serde_json::from_slice::<Value>(&bytes).expect("json")["kid"].clone()
    });
    let other_dir = std::env::temp_dir().join(format!("other-issuer-{}", uuid::Uuid::new_v4()));
    let other = LocalIssuer::open_or_create(&other_dir, &issuer.issuer, &issuer.audience)
        .expect("another key");
    let jwks = std::fs::read(
        std::path::Path::new(&std::env::var("AUTH_KEY_DIR").expect("AUTH_KEY_DIR"))
            .join("jwks.json"),
    )
    .expect("jwks");
    let hmac = hs256(
        kid.as_ref().and_then(Value::as_str),
        &claims(json!({})),
        &jwks,
    );
    vec![
        ("no token", None),
        ("malformed", Some("not-a-jwt".into())),
        (
            "expired",
            Some(issuer.sign(&claims(json!({"exp": now - 600})))),
        ),
        (
            "wrong audience",
            Some(issuer.sign(&claims(json!({"aud": "another-app"})))),
        ),
        (
            "wrong issuer",
            Some(issuer.sign(&claims(json!({"iss": "https://evil.example"})))),
        ),
        ("another key", Some(other.token(user.user_id, HOUR))),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                b64(&claims(json!({})))
            )),
        ),
        ("HS256 keyed with the public key", Some(hmac)),
    ]
}

/// An HS256 token keyed with `secret`: the algorithm-confusion attack the verifier must refuse
/// when the secret is the issuer's public key.
fn hs256(kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("hmac token")
}

async fn call(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    e2e_tests::call_signed_in(method, path, token, body).await
}

/// A message by `author`, sent through the verifying address and stored.
async fn stored_message_of(issuer: &LocalIssuer, author: &User) -> u64 {
    let token = issuer.token(author.user_id, HOUR);
    let (status, body) = call(
        Method::POST,
        "/send-message/",
        Some(&token),
        Some(json!({"message": "mine"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["message_id"].as_u64().expect("id");
    for _ in 0..100 {
        let (_, page) = call(
            Method::GET,
            // The author's group is new: its latest page holds all of it.
            &format!("/messages/{}", author.group_id),
            Some(&token),
            None,
        )
        .await;
        if page
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["id"] == id))
        {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("message {id} was never stored");
}

#[tokio::test]
async fn every_route_refuses_missing_and_bad_tokens_with_401() {
    let issuer = local_issuer();
    let member = fresh_user(true).await;
    let message = stored_message_of(&issuer, &member).await;
    let g = member.group_id;
    let routes = [
        (
            Method::POST,
            "/send-message/".to_owned(),
            Some(json!({"message": "x"})),
        ),
        (Method::GET, format!("/messages/{g}"), None),
        (
            Method::PUT,
            format!("/edit-message/{message}?new_text=x"),
            None,
        ),
        (Method::DELETE, format!("/delete-message/{message}"), None),
        (Method::GET, "/users/".to_owned(), None),
    ];
    for (what, token) in bad_tokens(&issuer, &member) {
        for (method, path, body) in &routes {
            let (status, reply) = call(method.clone(), path, token.as_deref(), body.clone()).await;
            assert_eq!(
                (status, &reply),
                (401, &json!({"message": "Unauthorized"})),
                "{what}: {method} {path}"
            );
        }
    }
    // Nothing was changed by any of them.
    let token = issuer.token(member.user_id, HOUR);
    let (_, page) = call(Method::GET, &format!("/messages/{g}"), Some(&token), None).await;
    assert_eq!(page.as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page[0]["message"], "mine");
}

#[tokio::test]
async fn a_valid_token_acts_only_as_its_user_in_its_group() {
    let issuer = local_issuer();
    let member = fresh_user(true).await;
    let outsider = fresh_user(true).await;
    let message = stored_message_of(&issuer, &member).await;
    let g = member.group_id;
    let mine = issuer.token(member.user_id, HOUR);
    let theirs = issuer.token(outsider.user_id, HOUR);
    // The outsider: the group and its messages are not there for them (404, as for a group
    // that does not exist).
    let cases = [
        (
            Method::POST,
            "/send-message/".to_owned(),
            Some(json!({"message": "x", "group_id": g.get()})),
            404,
        ),
        (Method::GET, format!("/messages/{g}"), None, 404),
        (
            Method::PUT,
            format!("/edit-message/{message}?new_text=x"),
            None,
            404,
        ),
        (
            Method::DELETE,
            format!("/delete-message/{message}"),
            None,
            404,
        ),
        (Method::GET, "/users/".to_owned(), None, 200),
    ];
    for (method, path, body, expected) in cases {
        let (status, reply) = call(method.clone(), &path, Some(&theirs), body).await;
        assert_eq!(status, expected, "outsider {method} {path}: {reply}");
    }
    // Impersonation: the member's token naming the outsider, or the outsider naming the member.
    let o = outsider.user_id;
    let m = member.user_id;
    let impersonations = [
        (
            Method::POST,
            "/send-message/".to_owned(),
            Some(json!({"user_id": o.get(), "message": "x"})),
            &mine,
        ),
        (
            Method::PUT,
            format!("/edit-message/{message}?new_text=x&user_id={m}"),
            None,
            &theirs,
        ),
        (
            Method::DELETE,
            format!("/delete-message/{message}?user_id={m}"),
            None,
            &theirs,
        ),
        (
            Method::GET,
            format!("/messages/{g}?user_id={o}"),
            None,
            &mine,
        ),
    ];
    for (method, path, body, token) in impersonations {
        let (status, reply) = call(method.clone(), &path, Some(token), body).await;
        assert_eq!(status, 403, "impersonation {method} {path}: {reply}");
    }
    // The member: everything, with or without naming themselves.
    let allowed = [
        (
            Method::POST,
            "/send-message/".to_owned(),
            Some(json!({"user_id": m.get(), "message": "again"})),
        ),
        (
            Method::PUT,
            format!("/edit-message/{message}?new_text=edited"),
            None,
        ),
        (Method::DELETE, format!("/delete-message/{message}"), None),
    ];
    for (method, path, body) in allowed {
        let (status, reply) = call(method.clone(), &path, Some(&mine), body).await;
        assert_eq!(status, 202, "member {method} {path}: {reply}");
    }
}

/// The handshake's status: 101, or what refused it.
async fn handshake(path: &str) -> Result<e2e_tests::Socket, u16> {
    let url = format!("{}{path}", jwt_api_url().replacen("http://", "ws://", 1));
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake to {path}: {e}"),
    }
}

#[tokio::test]
async fn only_members_with_a_valid_token_subscribe_and_then_receive_the_groups_frames() {
    let issuer = local_issuer();
    let member = fresh_user(true).await;
    let outsider = fresh_user(true).await;
    let g = member.group_id;
    for (what, token) in bad_tokens(&issuer, &member) {
        let query = token.map(|t| format!("&token={t}")).unwrap_or_default();
        for path in [
            format!("/?group_id={g}{query}"),
            format!("/subscribe/{g}?x=1{query}"),
        ] {
            assert_eq!(handshake(&path).await.err(), Some(401), "{what}: {path}");
        }
    }
    let theirs = issuer.token(outsider.user_id, HOUR);
    assert_eq!(
        handshake(&format!("/?group_id={g}&token={theirs}"))
            .await
            .err(),
        Some(403)
    );
    let mine = issuer.token(member.user_id, HOUR);
    let mut socket = handshake(&format!("/subscribe/{g}?token={mine}"))
        .await
        .expect("a member subscribes");
    let (status, _) = call(
        Method::POST,
        "/send-message/",
        Some(&mine),
        Some(json!({"message": "live"})),
    )
    .await;
    assert_eq!(status, 202);
    let frame = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str::<Value>(&text).expect("json")
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("the frame arrives");
    assert_eq!(frame["message"], "live", "{frame}");
}

#[tokio::test]
async fn a_user_over_the_socket_limit_loses_their_oldest_socket() {
    let issuer = local_issuer();
    let member = fresh_user(false).await;
    let token = issuer.token(member.user_id, HOUR);
    let path = format!("/?group_id={}&token={token}", member.group_id);
    let limit: usize = std::env::var("MAX_SOCKETS_PER_USER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut sockets = Vec::new();
    for _ in 0..=limit {
        sockets.push(handshake(&path).await.expect("subscribe"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let oldest_closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match sockets[0].next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(oldest_closed.is_ok(), "the oldest socket was not closed");
    let store = e2e_tests::store().await;
    use chat_core::store::ConnectionReader;
    let open = store
        .connections_for_group(member.group_id)
        .await
        .expect("query")
        .into_iter()
        .filter(|c| c.user_id == Some(member.user_id))
        .count();
    assert_eq!(open, limit);
}
