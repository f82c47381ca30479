use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;

use super::*;

const KEY: &str = "local-fn-test";
const SECRET: &str = "local-secret-test";

fn secret_of(key: &str) -> Option<String> {
    (key == KEY).then(|| SECRET.to_owned())
}

/// Signs a request with the AWS SDK's own signer; its headers (`authorization`, `x-amz-date`)
/// or query parameters added.
fn signed(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    service: &str,
    location: SignatureLocation,
    secret: &str,
) -> (String, Vec<(String, String)>) {
    let identity = Credentials::new(KEY, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = location;
    if location == SignatureLocation::QueryParams {
        settings.expires_in = Some(Duration::from_secs(900));
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signs").into_parts();
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    for (k, v) in instructions.headers() {
        all.push((k.to_ascii_lowercase(), v.to_owned()));
    }
    let mut query = url
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();
    for (k, v) in instructions.params() {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!(
            "{}={}",
            utf8_percent_encode(k, UNRESERVED),
            utf8_percent_encode(v, UNRESERVED)
        ));
    }
    (query, all)
}

fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = &rest[rest.find('/').unwrap_or(rest.len())..];
    path.split('?').next().unwrap_or("/")
}

/// Method, URL, headers, body, service.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [u8],
    &'a str,
);

#[test]
fn requests_signed_by_the_sdk_verify() {
    let cases: &[Case] = &[
        (
            "POST",
            "http://127.0.0.1:8100/",
            &[
                ("host", "127.0.0.1:8100"),
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", "DynamoDB_20120810.GetItem"),
            ],
            br#"{"TableName":"chat-users"}"#,
            "dynamodb",
        ),
        (
            "POST",
            "http://127.0.0.1:8000/live/@connections/abc%3D%2Bx",
            &[
                ("host", "127.0.0.1:8000"),
                ("content-type", "application/octet-stream"),
            ],
            b"{\"frame\": 1}",
            "execute-api",
        ),
        (
            "DELETE",
            "http://127.0.0.1:8000/live/@connections/a-b_c",
            &[("host", "127.0.0.1:8000")],
            b"",
            "execute-api",
        ),
        (
            "GET",
            "http://127.0.0.1:1/x?b=2&a=1&a=0&sp=a%20b",
            &[("host", "127.0.0.1:1"), ("x-spaced", "  a   b  ")],
            b"",
            "execute-api",
        ),
    ];
    for (method, url, headers, body, service) in cases {
        let (query, headers) = signed(
            method,
            url,
            headers,
            body,
            service,
            SignatureLocation::Headers,
            SECRET,
        );
        let request = SignedRequest {
            method,
            path: path_of(url),
            query: &query,
            headers: &headers,
            body,
        };
        let signer =
            verify(&request, secret_of, Utc::now()).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(signer.access_key, KEY);
        assert_eq!(signer.service, *service);
        assert_eq!(signer.region, "us-east-1");
    }
}

#[test]
fn a_changed_request_or_another_secret_fails_the_signature() {
    let url = "http://127.0.0.1:8100/";
    let base = [
        ("host", "127.0.0.1:8100"),
        ("x-amz-target", "DynamoDB_20120810.GetItem"),
    ];
    let (query, headers) = signed(
        "POST",
        url,
        &base,
        b"{}",
        "dynamodb",
        SignatureLocation::Headers,
        SECRET,
    );
    let changed_body = SignedRequest {
        method: "POST",
        path: "/",
        query: &query,
        headers: &headers,
        body: b"{ }",
    };
    assert_eq!(
        verify(&changed_body, secret_of, Utc::now()),
        Err(SignatureError::Mismatch)
    );
    let mut other_target = headers.clone();
    for (k, v) in &mut other_target {
        if k == "x-amz-target" {
            *v = "DynamoDB_20120810.DeleteTable".into();
        }
    }
    let changed_header = SignedRequest {
        method: "POST",
        path: "/",
        query: &query,
        headers: &other_target,
        body: b"{}",
    };
    assert_eq!(
        verify(&changed_header, secret_of, Utc::now()),
        Err(SignatureError::Mismatch)
    );
    let (query, headers) = signed(
        "POST",
        url,
        &base,
        b"{}",
        "dynamodb",
        SignatureLocation::Headers,
        "guessed",
    );
    let forged = SignedRequest {
        method: "POST",
        path: "/",
        query: &query,
        headers: &headers,
        body: b"{}",
    };
    assert_eq!(
        verify(&forged, secret_of, Utc::now()),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn unknown_keys_missing_signatures_and_old_ones_are_refused() {
    let url = "http://127.0.0.1:8100/";
    let base = [("host", "127.0.0.1:8100")];
    let (query, headers) = signed(
        "POST",
        url,
        &base,
        b"{}",
        "dynamodb",
        SignatureLocation::Headers,
        SECRET,
    );
    let request = SignedRequest {
        method: "POST",
        path: "/",
        query: &query,
        headers: &headers,
        body: b"{}",
    };
    assert_eq!(
        verify(&request, |_| None, Utc::now()),
        Err(SignatureError::UnknownKey(KEY.into()))
    );
    assert!(matches!(
        verify(&request, secret_of, Utc::now() + TimeDelta::minutes(16)),
        Err(SignatureError::Expired(_))
    ));
    let unsigned = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &[],
        body: b"{}",
    };
    assert_eq!(
        verify(&unsigned, secret_of, Utc::now()),
        Err(SignatureError::Missing)
    );
    let forms = [
        "Bearer x",
        "AWS4-HMAC-SHA256 Credential=k/20261206/us-east-1/dynamodb/aws4_request, Signature=00",
        "AWS4-HMAC-SHA256 Credential=k/x/aws4_request, SignedHeaders=host, Signature=00",
    ];
    for form in forms {
        let headers = vec![
            ("authorization".to_owned(), form.to_owned()),
            (
                "x-amz-date".to_owned(),
                Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            ),
            ("host".to_owned(), "h".to_owned()),
        ];
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert!(
            matches!(
                verify(&request, secret_of, Utc::now()),
                Err(SignatureError::Malformed(_))
            ),
            "{form}"
        );
    }
}

#[test]
fn presigned_urls_verify_until_they_expire() {
    let url = "https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect";
    let (query, _) = signed(
        "GET",
        url,
        &[],
        b"",
        "kafka-cluster",
        SignatureLocation::QueryParams,
        SECRET,
    );
    let query = format!("{query}&User-Agent=aws-msk-iam-sasl-signer-rs%2F1.0.1");
    let headers = vec![(
        "host".to_owned(),
        "kafka.us-east-1.amazonaws.com".to_owned(),
    )];
    let request = SignedRequest {
        method: "GET",
        path: "/",
        query: &query,
        headers: &headers,
        body: b"",
    };
    let signer = verify(&request, secret_of, Utc::now()).expect("verifies");
    assert_eq!(signer.service, "kafka-cluster");
    assert!(matches!(
        verify(&request, secret_of, Utc::now() + TimeDelta::minutes(16)),
        Err(SignatureError::Expired(_))
    ));
    let tampered = query.replace("kafka-cluster%3AConnect", "kafka-cluster%3AAlterCluster");
    let request = SignedRequest {
        method: "GET",
        path: "/",
        query: &tampered,
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        verify(&request, secret_of, Utc::now()),
        Err(SignatureError::Mismatch)
    );
}
