//! Typed configuration, read once per process from the environment.
//!
//! Every value has a local default except the DynamoDB endpoint, which is only set locally: an
//! unset endpoint means "the real AWS endpoint of `AWS_REGION`", so a forgotten variable on AWS
//! can never point a function at a laptop address.

mod kafka_security;

use std::time::Duration;

pub use kafka_security::{KafkaSecurity, ScramCredentials};

/// A missing or malformed configuration value, named so that the fix is obvious.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list, as librdkafka takes it.
    pub bootstrap_servers: String,
    pub security: KafkaSecurity,
    pub chat_topic: String,
    /// Where records that cannot be decoded or validated are set aside.
    pub dead_letter_topic: String,
    /// Upper bound for one produce (delivery report included) or admin request.
    pub timeout: Duration,
    /// Region of the cluster: MSK IAM tokens and SCRAM secrets are regional.
    pub region: String,
    /// Whether SASL connections use TLS: always on AWS; the local broker's MSK IAM listener
    /// has none (`KAFKA_TLS=false`).
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Users and groups: the directory of who may post where.
    pub users: String,
    pub messages: String,
    pub connections: String,
    /// Claims of `client_message_id`s, so that a retried send makes one message.
    pub idempotency: String,
    /// Who belongs to which group, with role and read mark.
    pub members: String,
    /// The per-user rate limits' buckets.
    pub limits: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoConfig {
    /// `http(s)://host:port` of DynamoDB Local; `None` on AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub tables: TableNames,
    /// Upper bound for one DynamoDB call, retries included.
    pub timeout: Duration,
}

/// Who the caller is taken to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The caller comes from a verified token's claims (API Gateway's JWT authorizer, or the
    /// `$connect` authorizer's context); a request without them is refused with 401.
    Jwt,
    /// Local development only: without claims, the `user_id` a request names is believed, as
    /// the original app did. The template cannot deploy it.
    TrustClient,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// The token issuer (`iss`), e.g. a Cognito user pool's URL. Needed by `ws-authorize`.
    pub issuer: Option<String>,
    /// The app client id tokens must be for (`aud`, or `client_id` of an access token).
    pub audience: Option<String>,
    /// Where the issuer's signing keys are; `{issuer}/.well-known/jwks.json` when unset.
    pub jwks_url: Option<String>,
    /// Open sockets a user may hold; opening one more closes their oldest.
    pub max_sockets_per_user: usize,
}

impl AuthConfig {
    /// The JWKS location: the one configured, else where Cognito (and OIDC issuers) put it.
    pub fn jwks_url(&self) -> Option<String> {
        self.jwks_url.clone().or_else(|| {
            self.issuer
                .as_ref()
                .map(|i| format!("{}/.well-known/jwks.json", i.trim_end_matches('/')))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub auth: AuthConfig,
    pub kafka: KafkaConfig,
    pub dynamodb: DynamoConfig,
    /// Base URL of the API Gateway Management API (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    pub ws_management_endpoint: Option<String>,
    /// Upper bound for one push to a connection, retries included.
    pub push_timeout: Duration,
    /// Which behaviours kept for the original app's clients are on (`COMPAT_OFF`).
    pub compat: crate::compat::Compat,
    /// How often each user may send, edit, delete, type and connect (`RATE_LIMIT_*`).
    pub limits: crate::limits::RateLimits,
}

/// How a deployment to AWS must treat a variable (checked against `infra/template.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAws {
    /// The local default would be wrong in the cloud: the template must set it.
    Required,
    /// The default suits AWS too, or the value depends on the chosen Kafka security.
    Optional,
    /// Set by the Lambda runtime; a template may not set it (it is reserved).
    SetByLambda,
    /// Only for local services; never set on AWS.
    LocalOnly,
}

/// One environment variable [`Config`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    /// `None`: optional, or required in some set-ups (see the README).
    pub default: Option<&'static str>,
    pub on_aws: OnAws,
}

const fn var(name: &'static str, default: Option<&'static str>, on_aws: OnAws) -> Variable {
    Variable {
        name,
        default,
        on_aws,
    }
}

/// Every variable [`Config`] reads.
pub const VARIABLES: &[Variable] = &[
    var(
        "KAFKA_BOOTSTRAP_SERVERS",
        Some("127.0.0.1:9092"),
        OnAws::Required,
    ),
    var("KAFKA_SECURITY", Some("plaintext"), OnAws::Required),
    var("KAFKA_SASL_USERNAME", None, OnAws::Optional),
    var("KAFKA_SASL_PASSWORD", None, OnAws::Optional),
    var("KAFKA_SASL_SECRET_ARN", None, OnAws::Optional),
    var("CHAT_TOPIC", Some("chat-events"), OnAws::Required),
    var(
        "DEAD_LETTER_TOPIC",
        Some("chat-events-dlq"),
        OnAws::Required,
    ),
    var("KAFKA_TIMEOUT_MS", Some("5000"), OnAws::Optional),
    // The local broker's MSK IAM listener is plaintext; every cluster on AWS uses TLS.
    var("KAFKA_TLS", Some("true"), OnAws::LocalOnly),
    var("DYNAMODB_ENDPOINT", None, OnAws::LocalOnly),
    var("AWS_REGION", Some("us-east-1"), OnAws::SetByLambda),
    var("USERS_TABLE", Some("chat-users"), OnAws::Required),
    var("MESSAGES_TABLE", Some("chat-messages"), OnAws::Required),
    var(
        "CONNECTIONS_TABLE",
        Some("chat-connections"),
        OnAws::Required,
    ),
    var(
        "IDEMPOTENCY_TABLE",
        Some("chat-idempotency"),
        OnAws::Required,
    ),
    var("MEMBERS_TABLE", Some("chat-members"), OnAws::Required),
    var("LIMITS_TABLE", Some("chat-limits"), OnAws::Required),
    var("DYNAMODB_TIMEOUT_MS", Some("3000"), OnAws::Optional),
    // Required by the stream processor only (without it events are stored, not pushed).
    var("WS_MANAGEMENT_ENDPOINT", None, OnAws::Optional),
    var("PUSH_TIMEOUT_MS", Some("3000"), OnAws::Optional),
    var("AUTH_MODE", Some("jwt"), OnAws::Required),
    // Required by ws-authorize only (the HTTP API's JWT authorizer has its own copy).
    var("AUTH_ISSUER", None, OnAws::Optional),
    var("AUTH_AUDIENCE", None, OnAws::Optional),
    var("AUTH_JWKS_URL", None, OnAws::Optional),
    var("MAX_SOCKETS_PER_USER", Some("5"), OnAws::Optional),
    // Per-user token buckets, `<burst>:<milliseconds per action>` (crate::limits).
    var("RATE_LIMIT_SEND", Some("20:500"), OnAws::Optional),
    var("RATE_LIMIT_EDIT", Some("10:1000"), OnAws::Optional),
    var("RATE_LIMIT_DELETE", Some("10:1000"), OnAws::Optional),
    var("RATE_LIMIT_TYPING", Some("5:1000"), OnAws::Optional),
    var("RATE_LIMIT_CONNECT", Some("10:6000"), OnAws::Optional),
    // Read by crate::metrics when a function starts, not by Config.
    var("METRICS_NAMESPACE", Some("Chat"), OnAws::Optional),
    // What of the original app's behaviour to drop (crate::compat); none by default.
    var("COMPAT_OFF", None, OnAws::Optional),
];

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| -> Option<String> {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .or_else(|| default_of(name).map(str::to_owned))
        };
        let region = region(get("AWS_REGION"))?;
        let kafka = KafkaConfig {
            bootstrap_servers: bootstrap_servers(get("KAFKA_BOOTSTRAP_SERVERS"))?,
            security: kafka_security::kafka_security(
                get("KAFKA_SECURITY"),
                get("KAFKA_SASL_USERNAME"),
                get("KAFKA_SASL_PASSWORD"),
                get("KAFKA_SASL_SECRET_ARN"),
            )?,
            chat_topic: topic_name("CHAT_TOPIC", get("CHAT_TOPIC"))?,
            dead_letter_topic: topic_name("DEAD_LETTER_TOPIC", get("DEAD_LETTER_TOPIC"))?,
            timeout: millis("KAFKA_TIMEOUT_MS", get("KAFKA_TIMEOUT_MS"))?,
            region: region.clone(),
            tls: flag("KAFKA_TLS", get("KAFKA_TLS"))?,
        };
        if !kafka.tls && kafka.security == KafkaSecurity::Plaintext {
            return Err(invalid(
                "KAFKA_TLS",
                "is `false`, but KAFKA_SECURITY is `plaintext`: TLS only applies to `msk-iam` and `scram`",
            ));
        }
        let dynamodb = DynamoConfig {
            endpoint: get("DYNAMODB_ENDPOINT")
                .map(|v| http_url("DYNAMODB_ENDPOINT", v))
                .transpose()?,
            region,
            tables: TableNames {
                users: table_name("USERS_TABLE", get("USERS_TABLE"))?,
                messages: table_name("MESSAGES_TABLE", get("MESSAGES_TABLE"))?,
                connections: table_name("CONNECTIONS_TABLE", get("CONNECTIONS_TABLE"))?,
                idempotency: table_name("IDEMPOTENCY_TABLE", get("IDEMPOTENCY_TABLE"))?,
                members: table_name("MEMBERS_TABLE", get("MEMBERS_TABLE"))?,
                limits: table_name("LIMITS_TABLE", get("LIMITS_TABLE"))?,
            },
            timeout: millis("DYNAMODB_TIMEOUT_MS", get("DYNAMODB_TIMEOUT_MS"))?,
        };
        let ws_management_endpoint = get("WS_MANAGEMENT_ENDPOINT")
            .map(|v| http_url("WS_MANAGEMENT_ENDPOINT", v))
            .transpose()?;
        let auth = AuthConfig {
            mode: auth_mode(get("AUTH_MODE"))?,
            issuer: get("AUTH_ISSUER"),
            audience: get("AUTH_AUDIENCE"),
            jwks_url: get("AUTH_JWKS_URL")
                .map(|v| http_url("AUTH_JWKS_URL", v))
                .transpose()?,
            max_sockets_per_user: count("MAX_SOCKETS_PER_USER", get("MAX_SOCKETS_PER_USER"))?,
        };
        Ok(Config {
            auth,
            kafka,
            dynamodb,
            ws_management_endpoint,
            push_timeout: millis("PUSH_TIMEOUT_MS", get("PUSH_TIMEOUT_MS"))?,
            compat: crate::compat::Compat::parse_off(get("COMPAT_OFF").as_deref())
                .map_err(|reason| invalid("COMPAT_OFF", reason))?,
            limits: rate_limits(&get)?,
        })
    }
}

pub fn default_of(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| v.default)
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

fn required(var: &'static str, value: Option<String>) -> Result<String, ConfigError> {
    value.ok_or_else(|| invalid(var, "is not set"))
}

fn bootstrap_servers(value: Option<String>) -> Result<String, ConfigError> {
    const VAR: &str = "KAFKA_BOOTSTRAP_SERVERS";
    let value = required(VAR, value)?;
    for server in value.split(',') {
        let server = server.trim();
        let (host, port) = server
            .rsplit_once(':')
            .ok_or_else(|| invalid(VAR, format!("`{server}` is not of the form host:port")))?;
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(invalid(VAR, format!("`{server}` has no valid host")));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(invalid(VAR, format!("`{server}` has no valid port"))),
        }
    }
    Ok(value
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(","))
}

fn topic_name(var: &'static str, value: Option<String>) -> Result<String, ConfigError> {
    let value = required(var, value)?;
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.len() > 249 || !value.chars().all(legal) || value == "." || value == ".." {
        return Err(invalid(
            var,
            format!("`{value}` is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"),
        ));
    }
    Ok(value)
}

fn table_name(var: &'static str, value: Option<String>) -> Result<String, ConfigError> {
    let value = required(var, value)?;
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !(3..=255).contains(&value.len()) || !value.chars().all(legal) {
        return Err(invalid(
            var,
            format!("`{value}` is not a DynamoDB table name (3-255 of a-z A-Z 0-9 . _ -)"),
        ));
    }
    Ok(value)
}

fn http_url(var: &'static str, value: String) -> Result<String, ConfigError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        _ => Err(invalid(
            var,
            format!("`{value}` is not an http:// or https:// URL"),
        )),
    }
}

fn region(value: Option<String>) -> Result<String, ConfigError> {
    let value = required("AWS_REGION", value)?;
    let legal = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if value.chars().all(legal) && value.contains('-') {
        Ok(value)
    } else {
        Err(invalid(
            "AWS_REGION",
            format!("`{value}` is not a region name like us-east-1"),
        ))
    }
}

fn auth_mode(value: Option<String>) -> Result<AuthMode, ConfigError> {
    match required("AUTH_MODE", value)?.as_str() {
        "jwt" => Ok(AuthMode::Jwt),
        "trust-client" => Ok(AuthMode::TrustClient),
        other => Err(invalid(
            "AUTH_MODE",
            format!("`{other}` is neither `jwt` nor `trust-client`"),
        )),
    }
}

fn flag(var: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match required(var, value)?.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid(
            var,
            format!("`{other}` is neither `true` nor `false`"),
        )),
    }
}

fn count(var: &'static str, value: Option<String>) -> Result<usize, ConfigError> {
    let value = required(var, value)?;
    match value.parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(invalid(
            var,
            format!("`{value}` is not a whole number between 1 and 1000"),
        )),
    }
}

fn rate_limits(
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<crate::limits::RateLimits, ConfigError> {
    use crate::limits::{Action, Limit};
    let limit = |action: Action| {
        let var = action.variable();
        Limit::parse(&required(var, get(var))?).map_err(|reason| invalid(var, reason))
    };
    Ok(crate::limits::RateLimits {
        send: limit(Action::Send)?,
        edit: limit(Action::Edit)?,
        delete: limit(Action::Delete)?,
        typing: limit(Action::Typing)?,
        connect: limit(Action::Connect)?,
    })
}

fn millis(var: &'static str, value: Option<String>) -> Result<Duration, ConfigError> {
    let value = required(var, value)?;
    match value.parse::<u64>() {
        Ok(ms) if (1..=600_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(invalid(
            var,
            format!("`{value}` is not a number of milliseconds between 1 and 600000"),
        )),
    }
}

#[cfg(test)]
mod tests;
