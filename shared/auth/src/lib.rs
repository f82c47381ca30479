//! `chat-auth`: JWTs, verifying them as API Gateway's JWT authorizer does (RSA signatures only, a key of
//! the issuer's JWKS chosen by `kid`, `iss`, `exp`, `nbf`, and `aud` or an access token's
//! `client_id`), and, for local development, an issuer whose key pair is generated once.
//!
//! Signing and verification are `jsonwebtoken`'s, on aws-lc-rs; nothing here handles a
//! signature by hand.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use chat_core::domain::{UserId, USER_ID_CLAIM};

/// The only algorithms accepted: API Gateway's JWT authorizers take RSA signatures only, and
/// a fixed list is what stops `alg: none` and an HMAC signed with the public key.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
/// A token naming a key the cached JWKS lacks makes us fetch it again, at most this often,
/// so that tokens with made-up `kid`s cannot turn us into a load on the issuer.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Upper bound for fetching the JWKS.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a token was refused; the text says what, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    #[error("the token is signed with {0}; only RS256, RS384 and RS512 are accepted")]
    Algorithm(String),
    #[error("the token's signing key is not one of the issuer's")]
    UnknownKey,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    /// Not the token's fault: the issuer's keys could not be read.
    #[error("the issuer's keys are unavailable: {0}")]
    KeysUnavailable(String),
}

/// Where the issuer's public keys are read from.
pub enum KeySource {
    /// Fetched over HTTP(S), as from Cognito's `/.well-known/jwks.json`.
    Url {
        url: String,
        client: reqwest::Client,
    },
    /// A JWKS file (the local issuer's, read by the local API Gateway).
    File(PathBuf),
}

/// Refuses an issuer or keys URL that is not HTTPS, except on this machine (the local
/// issuer): keys fetched in the clear could be swapped on the way, and every token then forged.
pub fn require_https(what: &str, url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    let loopback = lower.strip_prefix("http://").is_some_and(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        };
        is_loopback_host(host)
    });
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{what} must be an https:// URL (http:// only on this machine), not {url}"
        ))
    }
}

/// Whether a host (a name or an address, IPv6 in brackets or not, no port) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl KeySource {
    /// Keys fetched from `url`, which must be HTTPS unless on this machine.
    pub fn url(url: &str) -> Result<Self, TokenError> {
        require_https("the issuer's keys URL", url).map_err(TokenError::KeysUnavailable)?;
        let client = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .build()
            .map_err(|e| TokenError::KeysUnavailable(e.to_string()))?;
        Ok(Self::Url {
            url: url.to_owned(),
            client,
        })
    }

    async fn load(&self) -> Result<JwkSet, TokenError> {
        let unavailable = |e: &dyn std::fmt::Display| TokenError::KeysUnavailable(e.to_string());
        match self {
            Self::Url { url, client } => {
                let reply = client.get(url).send().await.map_err(|e| unavailable(&e))?;
                let reply = reply.error_for_status().map_err(|e| unavailable(&e))?;
                reply.json().await.map_err(|e| unavailable(&e))
            }
            Self::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| unavailable(&format!("{}: {e}", path.display())))?;
                serde_json::from_str(&text).map_err(|e| unavailable(&e))
            }
        }
    }
}

struct Cached {
    keys: JwkSet,
    fetched_at: Instant,
}

/// The keys last fetched, and the last fetch that failed since: remembered for the refresh
/// interval, so that during an issuer outage tokens are refused at once, not each after a
/// fetch of its own.
#[derive(Default)]
struct KeyState {
    cached: Option<Cached>,
    failed: Option<(Instant, String)>,
}

/// Verifies tokens of one issuer for one audience. Its keys are fetched on first use and
/// kept for the life of the process; an unknown `kid` (the issuer rotated) fetches them again.
pub struct Verifier {
    issuer: String,
    audience: String,
    source: KeySource,
    /// One fetch at a time: the lock is held while fetching.
    cache: tokio::sync::Mutex<KeyState>,
    refresh_interval: Duration,
}

impl Verifier {
    pub fn new(issuer: &str, audience: &str, source: KeySource) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            source,
            cache: tokio::sync::Mutex::new(KeyState::default()),
            refresh_interval: MIN_REFRESH_INTERVAL,
        }
    }

    /// Another minimum time between two fetches of the keys (tests of key rotation).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// The token's claims, if it is genuine, current, from our issuer and for our audience.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Malformed("the header names no key (kid)".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = ALGORITHMS.to_vec();
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        // Checked below: an access token has `client_id` where an ID token has `aud`.
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if !for_audience(&claims, &self.audience) {
            return Err(TokenError::Invalid(
                "the token is for another audience".into(),
            ));
        }
        Ok(claims)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut state = self.cache.lock().await;
        let find =
            |cached: &Option<Cached>| cached.as_ref().and_then(|c| c.keys.find(kid).cloned());
        if let Some(jwk) = find(&state.cached) {
            return decoding_key(&jwk);
        }
        if let Some((at, why)) = &state.failed {
            if at.elapsed() < self.refresh_interval {
                return Err(TokenError::KeysUnavailable(format!(
                    "{why} (a fetch {} ms ago; not tried again yet)",
                    at.elapsed().as_millis()
                )));
            }
        }
        let stale = state
            .cached
            .as_ref()
            .is_none_or(|c| c.fetched_at.elapsed() >= self.refresh_interval);
        if stale {
            match self.source.load().await {
                Ok(keys) => {
                    state.cached = Some(Cached {
                        keys,
                        fetched_at: Instant::now(),
                    });
                    state.failed = None;
                }
                Err(e) => {
                    state.failed = Some((Instant::now(), e.to_string()));
                    return Err(e);
                }
            }
        }
        find(&state.cached).map_or(Err(TokenError::UnknownKey), |jwk| decoding_key(&jwk))
    }
}

fn decoding_key(jwk: &Jwk) -> Result<DecodingKey, TokenError> {
    DecodingKey::from_jwk(jwk).map_err(|e| TokenError::KeysUnavailable(e.to_string()))
}

/// Whether the token is for us, as Cognito means its kinds: an ID token (`token_use: id`, or
/// none, as other OpenID issuers' ID tokens) names us in `aud`; an access token
/// (`token_use: access`) in `client_id`. Any other kind, or one naming us in the other's
/// claim, is not for us.
fn for_audience(claims: &Map<String, Value>, audience: &str) -> bool {
    let aud = || match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    match claims.get("token_use") {
        None => aud(),
        Some(Value::String(kind)) if kind == "id" => aud(),
        Some(Value::String(kind)) if kind == "access" => {
            claims.get("client_id").and_then(Value::as_str) == Some(audience)
        }
        Some(_) => false,
    }
}

/// API Gateway hands a function the claims as strings (numbers and booleans as their JSON
/// text, arrays as `[a b]`); the local API Gateway does the same.
pub fn flatten_claims(claims: &Map<String, Value>) -> std::collections::HashMap<String, String> {
    claims
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect()
}

/// The local stand-in for Cognito: an RSA key pair made on first use and kept in a folder
/// (`private.pem`, and `jwks.json` with the public key), which signs tokens for seeded users.
pub struct LocalIssuer {
    key: EncodingKey,
    kid: String,
    pub issuer: String,
    pub audience: String,
}

const PRIVATE_KEY_FILE: &str = "private.pem";
pub const JWKS_FILE: &str = "jwks.json";

impl LocalIssuer {
    /// The issuer whose keys are in `dir`, made there first if there are none.
    pub fn open_or_create(dir: &Path, issuer: &str, audience: &str) -> Result<Self, String> {
        let pem_path = dir.join(PRIVATE_KEY_FILE);
        if !pem_path.exists() {
            create_key_pair(dir)?;
        }
        let pem = std::fs::read(&pem_path).map_err(|e| format!("{}: {e}", pem_path.display()))?;
        let jwks_path = dir.join(JWKS_FILE);
        let jwks: JwkSet = std::fs::read_to_string(&jwks_path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", jwks_path.display()))?;
        let kid = jwks
            .keys
            .first()
            .and_then(|k| k.common.key_id.clone())
            .ok_or_else(|| format!("{} holds no key with a kid", jwks_path.display()))?;
        Ok(Self {
            key: EncodingKey::from_rsa_pem(&pem).map_err(|e| format!("{PRIVATE_KEY_FILE}: {e}"))?,
            kid,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// An ID token for `user_id`, valid for `lifetime`, shaped as Cognito's.
    pub fn token(&self, user_id: UserId, lifetime: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        self.sign(&serde_json::json!({
            "sub": format!("local-user-{user_id}"),
            "iss": self.issuer,
            "aud": self.audience,
            "token_use": "id",
            "iat": now,
            "exp": now + lifetime,
            USER_ID_CLAIM: user_id.to_string(),
        }))
    }

    /// `claims` signed with this issuer's key (RS256): tests shape bad tokens with it.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        // Serializing a JSON value and signing with a key that loaded cannot fail.
        jsonwebtoken::encode(&header, claims, &self.key).unwrap_or_default()
    }
}

/// A new RSA-2048 key pair in `dir`: the private key as PKCS#8 PEM, readable by the owner
/// only, and the public key as a one-key JWKS.
pub fn create_key_pair(dir: &Path) -> Result<(), String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;

    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| format!("key generation: {e}"))?;
    let der = pair.as_der().map_err(|e| format!("key encoding: {e}"))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let public = pair.public_key();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let kid = format!("local-{}", key_id(&b64));
    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": url.encode(public.modulus().big_endian_without_leading_zero()),
        "e": url.encode(public.exponent().big_endian_without_leading_zero()),
    }]});
    write_private(&dir.join(PRIVATE_KEY_FILE), pem.as_bytes())?;
    std::fs::write(dir.join(JWKS_FILE), jwks.to_string())
        .map_err(|e| format!("{}: {e}", dir.join(JWKS_FILE).display()))
}

/// A short, stable key id derived from the key itself.
fn key_id(b64: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    b64.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
