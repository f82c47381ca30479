//! The token provider with fixed credentials and a fixed clock. The signer reads the system
//! clock itself, so signatures are checked against the instant the token names (its
//! `X-Amz-Date`), re-derived here the way MSK verifies them: AWS's SigV4 query signing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::*;

/// 2026-11-24T12:00:00Z
const T: u64 = 1_795_521_600;

fn at(seconds_after_t: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T + seconds_after_t)
}

fn ms(seconds_after_t: u64) -> i64 {
    ((T + seconds_after_t) * 1000) as i64
}

#[test]
fn a_token_lives_as_long_as_its_signature_and_is_replaced_at_80_percent() {
    assert_eq!(schedule(at(0), ms(900), None), Ok((ms(900), ms(720))));
    // Credentials that outlive the signature change nothing.
    assert_eq!(
        schedule(at(0), ms(900), Some(at(3600))),
        Ok((ms(900), ms(720)))
    );
    // Signed a little after the signature's own clock started (slow credential fetch).
    assert_eq!(schedule(at(100), ms(900), None), Ok((ms(900), ms(740))));
}

#[test]
fn a_token_never_outlives_the_credentials_that_signed_it() {
    assert_eq!(
        schedule(at(0), ms(900), Some(at(300))),
        Ok((ms(300), ms(240)))
    );
}

#[test]
fn credentials_about_to_expire_or_a_skewed_clock_give_no_token() {
    assert_eq!(
        schedule(at(0), ms(900), Some(at(30))),
        Err(TokenError::TooShort { valid_ms: 30_000 })
    );
    assert_eq!(
        schedule(at(1000), ms(900), None),
        Err(TokenError::TooShort { valid_ms: -100_000 })
    );
    assert!(
        schedule(at(0), ms(60), None).is_ok(),
        "one minute is enough"
    );
}

fn fixed_credentials(expiry: Option<SystemTime>) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token/with+special=chars".into()),
        expiry,
        "test",
    ))
}

/// The signed URL inside a token, and its query parameters.
fn open_token(token: &str) -> (url::Url, BTreeMap<String, String>) {
    let bytes = base64::prelude::BASE64_URL_SAFE_NO_PAD
        .decode(token)
        .expect("token is unpadded base64url");
    let url = url::Url::parse(std::str::from_utf8(&bytes).expect("utf-8")).expect("a URL");
    let params = url.query_pairs().into_owned().collect();
    (url, params)
}

/// RFC 3986 encoding as SigV4 canonicalizes it: everything but unreserved characters.
fn aws_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The signature MSK expects for these parameters, computed from the secret key.
fn expected_signature(host: &str, params: &BTreeMap<String, String>, secret: &str) -> String {
    let canonical_query = params
        .iter()
        .filter(|(k, _)| k.as_str() != "X-Amz-Signature" && k.as_str() != "User-Agent")
        .map(|(k, v)| format!("{}={}", aws_encode(k), aws_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let empty_payload = hex::encode(Sha256::digest(b""));
    let canonical_request =
        format!("GET\n/\n{canonical_query}\nhost:{host}\n\nhost\n{empty_payload}");
    let amz_date = &params["X-Amz-Date"];
    let scope = params["X-Amz-Credential"]
        .split_once('/')
        .expect("key/scope")
        .1
        .to_owned();
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let signed_at = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .expect("X-Amz-Date")
        .and_utc();
    let signed_at = UNIX_EPOCH + Duration::from_secs(signed_at.timestamp() as u64);
    let key =
        aws_sigv4::sign::v4::generate_signing_key(secret, signed_at, "us-west-2", "kafka-cluster");
    aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes())
}

#[test]
fn tokens_are_sigv4_signed_connect_requests_for_the_regions_msk_endpoint() {
    let tokens = MskIamTokens::new(
        "us-west-2",
        fixed_credentials(None),
        SystemTime::now,
        Duration::from_secs(5),
    );
    let before = SystemTime::now();
    let token = tokens.token().expect("token");
    let (url, params) = open_token(&token.token);

    assert_eq!(url.scheme(), "https");
    assert_eq!(url.host_str(), Some("kafka.us-west-2.amazonaws.com"));
    assert_eq!(params["Action"], "kafka-cluster:Connect");
    assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(params["X-Amz-Expires"], "900");
    assert_eq!(params["X-Amz-SignedHeaders"], "host");
    assert_eq!(
        params["X-Amz-Security-Token"],
        "session-token/with+special=chars"
    );
    let credential: Vec<&str> = params["X-Amz-Credential"].split('/').collect();
    assert_eq!(credential[0], "AKIDEXAMPLE");
    assert_eq!(
        &credential[2..],
        ["us-west-2", "kafka-cluster", "aws4_request"]
    );
    assert!(params["User-Agent"].starts_with("aws-msk-iam-sasl-signer"));
    assert_eq!(
        params["X-Amz-Signature"],
        expected_signature(
            "kafka.us-west-2.amazonaws.com",
            &params,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        )
    );
    let wrong_key = expected_signature("kafka.us-west-2.amazonaws.com", &params, "other");
    assert_ne!(params["X-Amz-Signature"], wrong_key);

    // Valid for 15 minutes from signing; replaced 12 minutes in.
    let signed_ms = epoch_ms(before) / 1000 * 1000;
    assert!(
        (signed_ms..=signed_ms + 2_000).contains(&(token.expires_at_ms - 900_000)),
        "{token:?} signed at {signed_ms}"
    );
    let lifetime = token.expires_at_ms - epoch_ms(before);
    let refresh_in = token.refresh_at_ms - epoch_ms(before);
    assert!(
        (lifetime * 8 / 10 - 2_000..=lifetime * 8 / 10 + 2_000).contains(&refresh_in),
        "{token:?}"
    );
    assert!(
        !format!("{token:?}").contains(&token.token),
        "token in Debug"
    );
}

#[test]
fn short_lived_credentials_shorten_the_token() {
    let expiry = SystemTime::now() + Duration::from_secs(300);
    let tokens = MskIamTokens::new(
        "us-west-2",
        fixed_credentials(Some(expiry)),
        SystemTime::now,
        Duration::from_secs(5),
    );
    let token = tokens.token().expect("token");
    assert_eq!(token.expires_at_ms, epoch_ms(expiry));
}

#[test]
fn a_fixed_clock_far_from_the_signature_refuses_the_token() {
    // The signature says "now"; a clock an hour ahead finds it expired already.
    fn an_hour_ahead() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }
    let tokens = MskIamTokens::new(
        "us-west-2",
        fixed_credentials(None),
        an_hour_ahead,
        Duration::from_secs(5),
    );
    assert!(matches!(tokens.token(), Err(TokenError::TooShort { .. })));
}

#[derive(Debug, Default)]
struct CountingNoCredentials {
    asked: Arc<AtomicUsize>,
}

impl ProvideCredentials for CountingNoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.asked.fetch_add(1, Ordering::SeqCst);
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded("nothing configured")))
    }
}

#[test]
fn missing_credentials_are_reported_and_asked_for_again_on_the_next_request() {
    let asked = Arc::new(AtomicUsize::new(0));
    let tokens = MskIamTokens::new(
        "us-west-2",
        SharedCredentialsProvider::new(CountingNoCredentials {
            asked: asked.clone(),
        }),
        SystemTime::now,
        Duration::from_secs(5),
    );
    let err = tokens.token().expect_err("no credentials");
    assert!(matches!(err, TokenError::Credentials(_)), "{err}");
    assert!(err.to_string().contains("AWS_PROFILE"), "{err}");
    assert!(tokens.token().is_err());
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

#[test]
fn tokens_can_be_asked_for_from_inside_a_tokio_runtime() {
    // librdkafka may call back from a thread that runs async tasks (a StreamConsumer's poll).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tokens = MskIamTokens::new(
        "eu-central-1",
        fixed_credentials(None),
        SystemTime::now,
        Duration::from_secs(5),
    );
    let token = runtime.block_on(async { tokens.token() }).expect("token");
    let (url, _) = open_token(&token.token);
    assert_eq!(url.host_str(), Some("kafka.eu-central-1.amazonaws.com"));
}
