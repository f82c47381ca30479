use super::*;
use aws_lambda_events::query_map::QueryMap;
use chat_auth::{LocalIssuer, JWKS_FILE};
use chat_core::store::StoreError;
use chat_testkit::{Fallible, MemoryStore};
use std::collections::HashMap;
use std::time::Duration;

const ISSUER: &str = "http://127.0.0.1:8000/auth";
const AUDIENCE: &str = "chat-local";

struct Keys {
    issuer: LocalIssuer,
    verifier: Verifier,
}

fn keys() -> Keys {
    let dir = std::env::temp_dir().join(format!("ws-authorize-{}", uuid::Uuid::new_v4()));
    let issuer = LocalIssuer::open_or_create(&dir, ISSUER, AUDIENCE).expect("issuer");
    let verifier = Verifier::new(ISSUER, AUDIENCE, KeySource::File(dir.join(JWKS_FILE)));
    Keys { issuer, verifier }
}

fn connect(query: &[(&str, &str)]) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    let mut request = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
    request.method_arn = Some("arn:aws:execute-api:eu-west-1:1:api/prod/$connect".into());
    let map: HashMap<String, String> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    request.query_string_parameters = QueryMap::from(map);
    request
}

fn user(n: i128) -> UserId {
    UserId::new(n).expect("id")
}

#[tokio::test]
async fn members_with_a_valid_token_are_let_in_with_their_user_id() {
    let (t, k) = (MemoryStore::seeded(), keys());
    let token = k.issuer.token(user(3), Duration::from_secs(60));
    let decision = decide(
        &t,
        &k.verifier,
        &connect(&[("token", &token), ("group_id", "2")]),
    )
    .await;
    let Ok(Decision::Allow {
        user_id,
        token_expires_at,
    }) = decision
    else {
        panic!("{decision:?}");
    };
    assert_eq!(user_id, user(3));
    let expires_in = token_expires_at - chrono::Utc::now().timestamp();
    assert!(
        (55..=60).contains(&expires_in),
        "the token's exp: {expires_in} s"
    );
    let allow = Decision::Allow {
        user_id,
        token_expires_at,
    };
    let reply = serde_json::to_value(policy("arn:x", allow)).expect("json");
    assert_eq!(reply["principalId"], "3");
    assert_eq!(reply["context"]["user_id"], "3");
    assert_eq!(reply["context"]["token_expires_at"], token_expires_at);
    assert_eq!(reply["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(
        reply["policyDocument"]["Statement"][0]["Resource"][0],
        "arn:x"
    );
}

#[tokio::test]
async fn a_valid_token_for_another_group_or_no_user_is_denied() {
    let (t, k) = (MemoryStore::seeded(), keys());
    let charlie = k.issuer.token(user(3), Duration::from_secs(60));
    let now = chrono::Utc::now().timestamp();
    let nobody = k
        .issuer
        .sign(&serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 60}));
    let ghost = k.issuer.token(user(99), Duration::from_secs(60));
    for (token, group) in [
        (&charlie, "1"),
        (&charlie, "x"),
        (&charlie, ""),
        (&nobody, "2"),
        (&ghost, "1"),
    ] {
        let decision = decide(
            &t,
            &k.verifier,
            &connect(&[("token", token), ("group_id", group)]),
        )
        .await;
        assert!(
            matches!(decision, Ok(Decision::Deny(_))),
            "group {group:?}: {decision:?}"
        );
    }
    let reply = serde_json::to_value(policy("arn:x", Decision::Deny("no".into()))).expect("json");
    assert_eq!(reply["policyDocument"]["Statement"][0]["Effect"], "Deny");
}

#[tokio::test]
async fn missing_bad_or_foreign_tokens_are_unauthorized() {
    let (t, k) = (MemoryStore::seeded(), keys());
    let other = keys();
    let now = chrono::Utc::now().timestamp();
    let expired = k.issuer.sign(&serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "exp": now - 60, "custom:user_id": "1"
    }));
    let foreign = other.issuer.token(user(1), Duration::from_secs(60));
    for token in [
        None,
        Some(""),
        Some("x.y.z"),
        Some(expired.as_str()),
        Some(foreign.as_str()),
    ] {
        let mut query = vec![("group_id", "1")];
        query.extend(token.map(|t| ("token", t)));
        let decision = decide(&t, &k.verifier, &connect(&query)).await;
        assert!(
            matches!(decision, Err(Failure::Unauthorized(_))),
            "{token:?}: {decision:?}"
        );
    }
}

#[tokio::test]
async fn unreadable_keys_or_directory_fail_the_connect_rather_than_let_it_in() {
    let (t, k) = (MemoryStore::seeded(), keys());
    let token = k.issuer.token(user(1), Duration::from_secs(60));
    let query = [("token", token.as_str()), ("group_id", "1")];
    let keyless = Verifier::new(
        ISSUER,
        AUDIENCE,
        KeySource::File("/nonexistent/jwks.json".into()),
    );
    let decision = decide(&t, &keyless, &connect(&query)).await;
    assert!(
        matches!(decision, Err(Failure::Unavailable(_))),
        "{decision:?}"
    );
    t.fail_with(StoreError::Unavailable {
        op: "GetItem",
        cause: "down".into(),
    });
    let decision = decide(&t, &k.verifier, &connect(&query)).await;
    assert!(
        matches!(decision, Err(Failure::Unavailable(_))),
        "{decision:?}"
    );
}

#[test]
fn the_authorizer_needs_an_issuer_and_an_audience() {
    let mut auth = chat_testkit::requests::config().auth.clone();
    assert!(verifier(&auth).is_err());
    auth.issuer = Some(ISSUER.into());
    auth.audience = Some(AUDIENCE.into());
    assert!(verifier(&auth).is_ok());
    auth.issuer = Some("http://cognito.example.com/pool".into());
    assert!(verifier(&auth).is_err(), "an issuer in the clear");
}

#[tokio::test]
async fn without_a_group_a_valid_users_socket_follows_their_own_groups() {
    let (t, k) = (MemoryStore::seeded(), keys());
    let charlie = k.issuer.token(user(3), Duration::from_secs(60));
    let decision = decide(&t, &k.verifier, &connect(&[("token", &charlie)])).await;
    assert!(
        matches!(decision, Ok(Decision::Allow { user_id, .. }) if user_id == user(3)),
        "{decision:?}"
    );
    let now = chrono::Utc::now().timestamp();
    let nobody = k
        .issuer
        .sign(&serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 60}));
    let decision = decide(&t, &k.verifier, &connect(&[("token", &nobody)])).await;
    assert!(matches!(decision, Ok(Decision::Deny(_))), "{decision:?}");
}
