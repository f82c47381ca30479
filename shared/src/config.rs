//! Typed configuration, read once per process from the environment.
//!
//! Every value has a local default except the DynamoDB endpoint, which is only set locally: an
//! unset endpoint means "the real AWS endpoint of `AWS_REGION`", so a forgotten variable on AWS
//! can never point a function at a laptop address.

use std::time::Duration;

/// A missing or malformed configuration value, named so that the fix is obvious.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

/// How clients authenticate to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaSecurity {
    /// No TLS, no authentication: the local broker.
    Plaintext,
    /// Amazon MSK with IAM access control: SASL/OAUTHBEARER over TLS, with tokens signed by the
    /// function's AWS credentials.
    MskIam,
    /// SASL/SCRAM-SHA-512 over TLS: MSK with SCRAM, or a self-managed cluster.
    Scram(ScramCredentials),
}

/// Where the SCRAM user name and password come from.
#[derive(Clone, PartialEq, Eq)]
pub enum ScramCredentials {
    Inline {
        username: String,
        password: String,
    },
    /// A Secrets Manager secret holding `{"username": ..., "password": ...}`, the format MSK
    /// and Lambda's Kafka event source use; read once at start.
    Secret {
        arn: String,
    },
}

impl std::fmt::Debug for ScramCredentials {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline { username, .. } => f
                .debug_struct("Inline")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Secret { arn } => f.debug_struct("Secret").field("arn", arn).finish(),
        }
    }
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Users and groups: the directory of who may post where.
    pub users: String,
    pub messages: String,
    pub connections: String,
    /// Claims of `client_message_id`s, so that a retried send makes one message.
    pub idempotency: String,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub dynamodb: DynamoConfig,
    /// Base URL of the API Gateway Management API (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    pub ws_management_endpoint: Option<String>,
    /// Upper bound for one push to a connection, retries included.
    pub push_timeout: Duration,
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
    var("DYNAMODB_TIMEOUT_MS", Some("3000"), OnAws::Optional),
    // Required by the stream processor only (without it events are stored, not pushed).
    var("WS_MANAGEMENT_ENDPOINT", None, OnAws::Optional),
    var("PUSH_TIMEOUT_MS", Some("3000"), OnAws::Optional),
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
            security: kafka_security(
                get("KAFKA_SECURITY"),
                get("KAFKA_SASL_USERNAME"),
                get("KAFKA_SASL_PASSWORD"),
                get("KAFKA_SASL_SECRET_ARN"),
            )?,
            chat_topic: topic_name("CHAT_TOPIC", get("CHAT_TOPIC"))?,
            dead_letter_topic: topic_name("DEAD_LETTER_TOPIC", get("DEAD_LETTER_TOPIC"))?,
            timeout: millis("KAFKA_TIMEOUT_MS", get("KAFKA_TIMEOUT_MS"))?,
            region: region.clone(),
        };
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
            },
            timeout: millis("DYNAMODB_TIMEOUT_MS", get("DYNAMODB_TIMEOUT_MS"))?,
        };
        let ws_management_endpoint = get("WS_MANAGEMENT_ENDPOINT")
            .map(|v| http_url("WS_MANAGEMENT_ENDPOINT", v))
            .transpose()?;
        Ok(Config {
            kafka,
            dynamodb,
            ws_management_endpoint,
            push_timeout: millis("PUSH_TIMEOUT_MS", get("PUSH_TIMEOUT_MS"))?,
        })
    }
}

fn default_of(name: &str) -> Option<&'static str> {
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

fn kafka_security(
    value: Option<String>,
    username: Option<String>,
    password: Option<String>,
    secret_arn: Option<String>,
) -> Result<KafkaSecurity, ConfigError> {
    const VAR: &str = "KAFKA_SECURITY";
    let security = required(VAR, value)?;
    let scram = match (security.as_str(), username, password, secret_arn) {
        ("plaintext" | "msk-iam", None, None, None) => None,
        ("plaintext" | "msk-iam", u, p, _) => {
            let set = if u.is_some() {
                "KAFKA_SASL_USERNAME"
            } else if p.is_some() {
                "KAFKA_SASL_PASSWORD"
            } else {
                "KAFKA_SASL_SECRET_ARN"
            };
            return Err(invalid(
                set,
                format!("is set, but KAFKA_SECURITY is `{security}`: it is only used with `scram`"),
            ));
        }
        ("scram", Some(username), Some(password), None) => {
            Some(ScramCredentials::Inline { username, password })
        }
        ("scram", None, None, Some(arn)) => Some(ScramCredentials::Secret {
            arn: secret_arn_value(arn)?,
        }),
        ("scram", None, None, None) => {
            return Err(invalid(
                VAR,
                "`scram` needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD, or KAFKA_SASL_SECRET_ARN",
            ))
        }
        ("scram", Some(_), Some(_), Some(_)) => {
            return Err(invalid(
                "KAFKA_SASL_SECRET_ARN",
                "is set together with KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD: set one or the other",
            ))
        }
        ("scram", u, _, _) => {
            let (set, missing) = if u.is_some() {
                ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
            } else {
                ("KAFKA_SASL_PASSWORD", "KAFKA_SASL_USERNAME")
            };
            return Err(invalid(missing, format!("is not set, but {set} is")));
        }
        (other, ..) => {
            return Err(invalid(
                VAR,
                format!("`{other}` is not supported (expected `plaintext`, `msk-iam` or `scram`)"),
            ))
        }
    };
    Ok(match (security.as_str(), scram) {
        ("msk-iam", _) => KafkaSecurity::MskIam,
        (_, Some(credentials)) => KafkaSecurity::Scram(credentials),
        _ => KafkaSecurity::Plaintext,
    })
}

fn secret_arn_value(arn: String) -> Result<String, ConfigError> {
    // arn:<partition>:secretsmanager:<region>:<account>:secret:<name>
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    if parts.len() == 7 && parts[0] == "arn" && parts[2] == "secretsmanager" && parts[5] == "secret"
    {
        Ok(arn)
    } else {
        Err(invalid(
            "KAFKA_SASL_SECRET_ARN",
            format!("`{arn}` is not a Secrets Manager secret ARN (arn:aws:secretsmanager:...:secret:...)"),
        ))
    }
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_describe_the_local_stack() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(c.kafka.chat_topic, "chat-events");
        assert_eq!(c.kafka.security, KafkaSecurity::Plaintext);
        assert_eq!(c.dynamodb.endpoint, None);
        assert_eq!(c.dynamodb.region, "us-east-1");
        assert_eq!(c.dynamodb.tables.messages, "chat-messages");
        assert_eq!(c.kafka.timeout, Duration::from_millis(5000));
    }

    #[test]
    fn values_from_the_environment_override_defaults() {
        let c = config(&[
            ("KAFKA_BOOTSTRAP_SERVERS", " b1:9092, b2:9094 "),
            ("DYNAMODB_ENDPOINT", "http://127.0.0.1:8100/"),
            ("USERS_TABLE", "t1-users"),
            ("DYNAMODB_TIMEOUT_MS", "250"),
        ])
        .expect("valid");
        assert_eq!(c.kafka.bootstrap_servers, "b1:9092,b2:9094");
        assert_eq!(
            c.dynamodb.endpoint.as_deref(),
            Some("http://127.0.0.1:8100")
        );
        assert_eq!(c.dynamodb.tables.users, "t1-users");
        assert_eq!(c.dynamodb.timeout, Duration::from_millis(250));
    }

    #[test]
    fn an_empty_value_counts_as_unset() {
        let c = config(&[("CHAT_TOPIC", ""), ("DYNAMODB_ENDPOINT", "  ")]).expect("valid");
        assert_eq!(c.kafka.chat_topic, "chat-events");
        assert_eq!(c.dynamodb.endpoint, None);
    }

    #[test]
    fn malformed_values_are_named_in_the_error() {
        for (var, value) in [
            ("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
            ("KAFKA_BOOTSTRAP_SERVERS", "localhost:notaport"),
            ("KAFKA_BOOTSTRAP_SERVERS", "a:9092,:9093"),
            ("KAFKA_SECURITY", "ssl-please"),
            ("CHAT_TOPIC", "chat events"),
            ("DEAD_LETTER_TOPIC", ".."),
            ("DYNAMODB_ENDPOINT", "localhost:8100"),
            ("AWS_REGION", "Mars"),
            ("MESSAGES_TABLE", "ab"),
            ("CONNECTIONS_TABLE", "conn/ections"),
            ("KAFKA_TIMEOUT_MS", "-5"),
            ("DYNAMODB_TIMEOUT_MS", "0"),
            ("WS_MANAGEMENT_ENDPOINT", "ftp://x"),
        ] {
            let err = config(&[(var, value)]).expect_err(value);
            assert_eq!(err.var, var, "{value}");
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn every_variable_with_a_default_has_a_valid_default() {
        for v in VARIABLES {
            if let Some(default) = v.default {
                config(&[(v.name, default)]).expect(v.name);
            }
        }
    }

    #[test]
    fn kafka_security_modes_are_read_with_their_credentials() {
        assert_eq!(
            config(&[("KAFKA_SECURITY", "msk-iam"), ("AWS_REGION", "eu-west-1")])
                .expect("valid")
                .kafka,
            KafkaConfig {
                security: KafkaSecurity::MskIam,
                region: "eu-west-1".into(),
                ..config(&[]).expect("valid").kafka
            }
        );
        let inline = config(&[
            ("KAFKA_SECURITY", "scram"),
            ("KAFKA_SASL_USERNAME", "chat"),
            ("KAFKA_SASL_PASSWORD", "s3cret"),
        ])
        .expect("valid");
        assert_eq!(
            inline.kafka.security,
            KafkaSecurity::Scram(ScramCredentials::Inline {
                username: "chat".into(),
                password: "s3cret".into()
            })
        );
        assert!(!format!("{inline:?}").contains("s3cret"), "password logged");
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_chat-AbCdEf";
        assert_eq!(
            config(&[("KAFKA_SECURITY", "scram"), ("KAFKA_SASL_SECRET_ARN", arn)])
                .expect("valid")
                .kafka
                .security,
            KafkaSecurity::Scram(ScramCredentials::Secret { arn: arn.into() })
        );
    }

    #[test]
    fn kafka_security_misconfigurations_name_the_variable_to_fix() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_chat";
        for (pairs, var, says) in [
            (
                vec![("KAFKA_SECURITY", "sasl_ssl")],
                "KAFKA_SECURITY",
                "msk-iam",
            ),
            (
                vec![("KAFKA_SECURITY", "scram")],
                "KAFKA_SECURITY",
                "KAFKA_SASL_SECRET_ARN",
            ),
            (
                vec![("KAFKA_SECURITY", "scram"), ("KAFKA_SASL_USERNAME", "u")],
                "KAFKA_SASL_PASSWORD",
                "is not set, but KAFKA_SASL_USERNAME is",
            ),
            (
                vec![("KAFKA_SECURITY", "scram"), ("KAFKA_SASL_PASSWORD", "p")],
                "KAFKA_SASL_USERNAME",
                "is not set",
            ),
            (
                vec![
                    ("KAFKA_SECURITY", "scram"),
                    ("KAFKA_SASL_USERNAME", "u"),
                    ("KAFKA_SASL_PASSWORD", "p"),
                    ("KAFKA_SASL_SECRET_ARN", arn),
                ],
                "KAFKA_SASL_SECRET_ARN",
                "one or the other",
            ),
            (
                vec![
                    ("KAFKA_SECURITY", "scram"),
                    ("KAFKA_SASL_SECRET_ARN", "chat-secret"),
                ],
                "KAFKA_SASL_SECRET_ARN",
                "not a Secrets Manager secret ARN",
            ),
            (
                vec![("KAFKA_SECURITY", "msk-iam"), ("KAFKA_SASL_USERNAME", "u")],
                "KAFKA_SASL_USERNAME",
                "only used with `scram`",
            ),
            (
                vec![("KAFKA_SASL_SECRET_ARN", arn)],
                "KAFKA_SASL_SECRET_ARN",
                "KAFKA_SECURITY is `plaintext`",
            ),
        ] {
            let err = config(&pairs).expect_err(var);
            assert_eq!(err.var, var, "{pairs:?}");
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
