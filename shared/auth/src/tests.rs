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
    let access = f
        .issuer
        .sign(&json!({"iss": ISSUER, "client_id": AUDIENCE, "exp": now + 60}));
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
