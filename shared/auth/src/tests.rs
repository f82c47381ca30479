use super::*;
use chat_core::domain::USER_ID_CLAIM;
use serde_json::json;

const ISSUER: &str = "http://127.0.0.1:8000/auth";
const AUDIENCE: &str = "chat-local";

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-jwt-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

struct Fixture {
    issuer: LocalIssuer,
    verifier: Verifier,
    dir: PathBuf,
}

fn fixture() -> Fixture {
    let dir = temp_dir();
    let issuer = LocalIssuer::open_or_create(&dir, ISSUER, AUDIENCE).expect("issuer");
    let verifier = Verifier::new(ISSUER, AUDIENCE, KeySource::File(dir.join(JWKS_FILE)));
    Fixture {
        issuer,
        verifier,
        dir,
    }
}

fn claims(user: &str, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + exp_offset, "iat": now, USER_ID_CLAIM: user})
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn a_current_token_of_the_issuer_is_accepted_with_its_claims() {
    let f = fixture();
    let token = f
        .issuer
        .token(UserId::new(3).expect("id"), Duration::from_secs(60));
    let verified = f.verifier.verify(&token).await.expect("valid");
    assert_eq!(verified[USER_ID_CLAIM], "3");
    assert_eq!(
        flatten_claims(&verified)["exp"],
        verified["exp"].to_string()
    );
    // A Cognito access token names its app client in `client_id`, not `aud`.
    let now = chrono::Utc::now().timestamp();
    let access = f.issuer.sign(
        &json!({"iss": ISSUER, "token_use": "access", "client_id": AUDIENCE, "exp": now + 60}),
    );
    assert!(f.verifier.verify(&access).await.is_ok());
    // The key pair is made once: opening the folder again signs with the same key.
    let again = LocalIssuer::open_or_create(&f.dir, ISSUER, AUDIENCE).expect("reopen");
    assert!(f
        .verifier
        .verify(&again.sign(&claims("1", 60)))
        .await
        .is_ok());
}

#[tokio::test]
async fn expired_early_misaddressed_or_foreign_tokens_are_refused() {
    let f = fixture();
    let now = chrono::Utc::now().timestamp();
    let other = fixture();
    let cases = [
        ("expired", f.issuer.sign(&claims("1", -600))),
        ("not yet valid", {
            let mut c = claims("1", 600);
            c["nbf"] = json!(now + 300);
            f.issuer.sign(&c)
        }),
        ("wrong audience", {
            let mut c = claims("1", 600);
            c["aud"] = json!("someone-else");
            f.issuer.sign(&c)
        }),
        ("wrong issuer", {
            let mut c = claims("1", 600);
            c["iss"] = json!("https://evil.example");
            f.issuer.sign(&c)
        }),
        (
            "no expiry",
            f.issuer.sign(&json!({"iss": ISSUER, "aud": AUDIENCE})),
        ),
        (
            "another key, another kid",
            other.issuer.sign(&claims("1", 600)),
        ),
    ];
    for (what, token) in cases {
        let err = f.verifier.verify(&token).await.expect_err(what);
        assert!(
            matches!(err, TokenError::Invalid(_) | TokenError::UnknownKey),
            "{what}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_forged_signature_none_and_hmac_with_the_public_key_are_refused() {
    let f = fixture();
    let token = f.issuer.sign(&claims("1", 600));
    let kid = jsonwebtoken::decode_header(&token).expect("header").kid;
    // Another key under our key's kid: the signature does not verify.
    let other = fixture();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.clone();
    let forged = jsonwebtoken::encode(&header, &claims("1", 600), &other.issuer.key).expect("sign");
    let err = f.verifier.verify(&forged).await.expect_err("forged");
    assert!(matches!(err, TokenError::Invalid(_)), "{err:?}");
    // `alg: none`, no signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&claims("1", 600))
    );
    assert!(f.verifier.verify(&none).await.is_err());
    // HS256 keyed with the public key, the classic confusion attack.
    let jwks = std::fs::read(f.dir.join(JWKS_FILE)).expect("jwks");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid;
    let hmac = jsonwebtoken::encode(&header, &claims("1", 600), &EncodingKey::from_secret(&jwks))
        .expect("sign");
    let err = f.verifier.verify(&hmac).await.expect_err("hmac");
    assert!(matches!(err, TokenError::Algorithm(_)), "{err:?}");
    // A token whose payload was changed after signing.
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims("2", 600)), parts[2]);
    assert!(matches!(
        f.verifier.verify(&tampered).await,
        Err(TokenError::Invalid(_))
    ));
    for garbage in ["", "abc", "a.b.c", "..", "Bearer x.y.z"] {
        let err = f.verifier.verify(garbage).await.expect_err(garbage);
        assert!(
            matches!(err, TokenError::Malformed(_)),
            "{garbage:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_again_and_missing_keys_are_not_the_tokens_fault() {
    let f = fixture();
    let verifier = Verifier::new(ISSUER, AUDIENCE, KeySource::File(f.dir.join(JWKS_FILE)))
        .with_refresh_interval(Duration::ZERO);
    assert!(verifier
        .verify(&f.issuer.sign(&claims("1", 60)))
        .await
        .is_ok());
    // The issuer rotates: a new key pair in the same folder.
    std::fs::remove_file(f.dir.join(PRIVATE_KEY_FILE)).expect("remove");
    let rotated = LocalIssuer::open_or_create(&f.dir, ISSUER, AUDIENCE).expect("rotate");
    assert!(verifier
        .verify(&rotated.sign(&claims("1", 60)))
        .await
        .is_ok());
    let nowhere = Verifier::new(
        ISSUER,
        AUDIENCE,
        KeySource::File(f.dir.join("missing.json")),
    );
    let err = nowhere
        .verify(&rotated.sign(&claims("1", 60)))
        .await
        .expect_err("no keys");
    assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn id_and_access_tokens_are_each_for_us_in_their_own_claim_and_no_other_kind_is() {
    let f = fixture();
    let now = chrono::Utc::now().timestamp();
    let token = |extra: Value| {
        let mut c = json!({"iss": ISSUER, "exp": now + 600, USER_ID_CLAIM: "1"});
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        f.issuer.sign(&c)
    };
    for (what, extra, ok) in [
        (
            "an ID token",
            json!({"token_use": "id", "aud": AUDIENCE}),
            true,
        ),
        (
            "an access token",
            json!({"token_use": "access", "client_id": AUDIENCE}),
            true,
        ),
        (
            "an ID token of another issuer kind",
            json!({"aud": AUDIENCE}),
            true,
        ),
        (
            "an ID token naming us as client",
            json!({"token_use": "id", "client_id": AUDIENCE}),
            false,
        ),
        (
            "an access token naming us as audience",
            json!({"token_use": "access", "aud": AUDIENCE}),
            false,
        ),
        (
            "a refresh token",
            json!({"token_use": "refresh", "aud": AUDIENCE}),
            false,
        ),
        (
            "a kind that is not a string",
            json!({"token_use": 1, "aud": AUDIENCE}),
            false,
        ),
    ] {
        let verdict = f.verifier.verify(&token(extra)).await;
        assert_eq!(verdict.is_ok(), ok, "{what}: {verdict:?}");
    }
}

#[tokio::test]
async fn a_failed_key_fetch_is_remembered_so_tokens_are_refused_at_once_until_it_is_tried_again() {
    let f = fixture();
    let missing = f.dir.join("not-yet.json");
    let verifier = Verifier::new(ISSUER, AUDIENCE, KeySource::File(missing.clone()))
        .with_refresh_interval(Duration::from_millis(300));
    let token = f.issuer.sign(&claims("1", 60));
    let first = verifier.verify(&token).await.expect_err("no keys yet");
    assert!(matches!(first, TokenError::KeysUnavailable(_)), "{first:?}");
    // The keys appear, but the failure is remembered for the interval: not fetched again.
    std::fs::copy(f.dir.join(JWKS_FILE), &missing).expect("copy");
    let remembered = verifier.verify(&token).await.expect_err("remembered");
    assert!(
        matches!(&remembered, TokenError::KeysUnavailable(why) if why.contains("not tried again")),
        "{remembered:?}"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        verifier.verify(&token).await.is_ok(),
        "tried again after the interval"
    );
}

#[test]
fn issuers_and_keys_are_fetched_over_https_except_on_this_machine() {
    for (url, ok) in [
        (
            "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json",
            true,
        ),
        ("http://127.0.0.1:8000/auth/.well-known/jwks.json", true),
        ("http://localhost:8000/auth", true),
        ("http://[::1]:8000/auth", true),
        ("http://issuer.example.com/.well-known/jwks.json", false),
        ("http://127.0.0.1.evil.example/keys", false),
        ("ftp://127.0.0.1/keys", false),
    ] {
        assert_eq!(require_https("keys", url).is_ok(), ok, "{url}");
        assert_eq!(KeySource::url(url).is_ok(), ok, "{url}");
    }
}
