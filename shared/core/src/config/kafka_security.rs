//! How clients authenticate to Kafka, read from `KAFKA_SECURITY` and the SASL variables.

use super::{invalid, required, ConfigError};

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

pub(super) fn kafka_security(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::config::KafkaConfig;

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
