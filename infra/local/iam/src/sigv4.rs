//! Verifying AWS Signature Version 4, as an AWS service does before anything else: the
//! signature is computed again from the request and the secret of the access key it names, and
//! must be equal; the signing time must be within 15 minutes of now (or, for a presigned URL,
//! the URL not expired). Both forms: the `Authorization` header (DynamoDB, the Management API)
//! and the query string (a presigned URL, such as an MSK IAM token).

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a signing time may be from now (AWS's limit).
const MAX_SKEW: TimeDelta = TimeDelta::minutes(15);

/// What RFC 3986 leaves unreserved; everything else is percent-encoded in canonical forms.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// A request as it arrived, for verifying its signature.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Header names in lowercase; a repeated header once per value.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// A request's headers as [`SignedRequest`] takes them: names in lowercase, one pair per value.
pub fn header_pairs(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Who signed a request, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub access_key: String,
    pub region: String,
    pub service: String,
    pub signed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature at all (AWS: `MissingAuthenticationTokenException`).
    #[error("Missing Authentication Token")]
    Missing,
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// AWS: `UnrecognizedClientException`.
    #[error("The security token included in the request is invalid (unknown access key {0})")]
    UnknownKey(String),
    /// AWS: `InvalidSignatureException`.
    #[error("The request signature we calculated does not match the signature you provided")]
    Mismatch,
    #[error("Signature expired or not yet valid: {0}")]
    Expired(String),
}

/// Verifies `request`, looking up the secret of the access key it names with `secret_of`.
pub fn verify(
    request: &SignedRequest<'_>,
    secret_of: impl Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Result<Signer, SignatureError> {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(authorization) = header("authorization") {
        let fields = authorization
            .strip_prefix(ALGORITHM)
            .ok_or_else(|| SignatureError::Malformed(format!("not {ALGORITHM}")))?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for field in fields.split(',') {
            match field.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(SignatureError::Malformed(
                "Authorization lacks Credential, SignedHeaders or Signature".into(),
            ));
        };
        let date = header("x-amz-date")
            .ok_or_else(|| SignatureError::Malformed("no X-Amz-Date".into()))?;
        let signed_at = parse_time(date)?;
        if (now - signed_at).abs() > MAX_SKEW {
            return Err(SignatureError::Expired(format!(
                "signed at {date}, more than 15 minutes from now"
            )));
        }
        let payload_hash = match header("x-amz-content-sha256") {
            Some(hash) => hash.to_owned(),
            None => hex::encode(Sha256::digest(request.body)),
        };
        let query = canonical_query(request.query, &[]);
        check(
            request,
            Parts {
                credential,
                signed_headers,
                signature,
                date,
                query,
                payload_hash,
                signed_at,
            },
            &secret_of,
        )
    } else if request.query.contains("X-Amz-Signature=") {
        let params: Vec<(String, String)> = form_urlencoded::parse(request.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| SignatureError::Malformed(format!("no {name}")))
        };
        if param("X-Amz-Algorithm")? != ALGORITHM {
            return Err(SignatureError::Malformed(format!("not {ALGORITHM}")));
        }
        let date = param("X-Amz-Date")?;
        let signed_at = parse_time(date)?;
        let expires: i64 = param("X-Amz-Expires")?
            .parse()
            .map_err(|_| SignatureError::Malformed("X-Amz-Expires".into()))?;
        if now > signed_at + TimeDelta::seconds(expires) || signed_at - now > MAX_SKEW {
            return Err(SignatureError::Expired(format!(
                "signed at {date} for {expires} s"
            )));
        }
        // Parameters appended after signing (as MSK's signers append User-Agent) are not part of
        // the signature.
        let query = canonical_query(request.query, &["X-Amz-Signature", "User-Agent"]);
        check(
            request,
            Parts {
                credential: param("X-Amz-Credential")?,
                signed_headers: param("X-Amz-SignedHeaders")?,
                signature: param("X-Amz-Signature")?,
                date,
                query,
                payload_hash: hex::encode(Sha256::digest(request.body)),
                signed_at,
            },
            &secret_of,
        )
    } else {
        Err(SignatureError::Missing)
    }
}

struct Parts<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
    date: &'a str,
    query: String,
    payload_hash: String,
    signed_at: DateTime<Utc>,
}

fn check(
    request: &SignedRequest<'_>,
    parts: Parts<'_>,
    secret_of: &impl Fn(&str) -> Option<String>,
) -> Result<Signer, SignatureError> {
    // <key>/<yyyymmdd>/<region>/<service>/aws4_request
    let scope: Vec<&str> = parts.credential.split('/').collect();
    let [key, day, region, service, "aws4_request"] = scope[..] else {
        return Err(SignatureError::Malformed(format!(
            "credential scope {}",
            parts.credential
        )));
    };
    if !parts.date.starts_with(day) {
        return Err(SignatureError::Malformed(
            "the credential's date is not the signing date".into(),
        ));
    }
    let secret = secret_of(key).ok_or_else(|| SignatureError::UnknownKey(key.to_owned()))?;
    let mut canonical_headers = String::new();
    for name in parts.signed_headers.split(';') {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SignatureError::Malformed(format!(
                "signed header {name} is not in the request"
            )));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_path(request.path),
        parts.query,
        canonical_headers,
        parts.signed_headers,
        parts.payload_hash
    );
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        parts.date,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut signing_key = hmac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    for part in [region, service, "aws4_request"] {
        signing_key = hmac(&signing_key, part.as_bytes());
    }
    let expected = hex::encode(hmac(&signing_key, string_to_sign.as_bytes()));
    if !constant_time_eq(expected.as_bytes(), parts.signature.as_bytes()) {
        return Err(SignatureError::Mismatch);
    }
    Ok(Signer {
        access_key: key.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_at: parts.signed_at,
    })
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, SignatureError> {
    NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc())
        .map_err(|_| SignatureError::Malformed(format!("signing time {text}")))
}

/// The path as SigV4 signs it for every service but S3: encoded once more, as sent.
fn canonical_path(path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    utf8_percent_encode(path, UNRESERVED_AND_SLASH).to_string()
}

/// Query parameters decoded, encoded again strictly, sorted; `skip` left out.
fn canonical_query(query: &str, skip: &[&str]) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| !skip.contains(&k.as_ref()))
        .map(|(k, v)| {
            (
                utf8_percent_encode(&k, UNRESERVED).to_string(),
                utf8_percent_encode(&v, UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests;
