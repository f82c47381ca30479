use super::*;
use std::collections::HashMap;

pub(super) fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
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
fn identity_is_verified_unless_trust_is_asked_for() {
    let c = config(&[]).expect("defaults are valid");
    assert_eq!(c.auth.mode, AuthMode::Jwt);
    assert_eq!(c.auth.max_sockets_per_user, 5);
    assert_eq!(c.auth.jwks_url(), None);
    let c = config(&[
        ("AUTH_MODE", "trust-client"),
        (
            "AUTH_ISSUER",
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/",
        ),
    ])
    .expect("valid");
    assert_eq!(c.auth.mode, AuthMode::TrustClient);
    assert_eq!(
        c.auth.jwks_url().as_deref(),
        Some("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json")
    );
    for (var, value) in [
        ("AUTH_MODE", "none"),
        ("AUTH_MODE", "JWT"),
        ("MAX_SOCKETS_PER_USER", "0"),
        ("AUTH_JWKS_URL", "file:///keys.json"),
    ] {
        let err = config(&[(var, value)]).expect_err(value);
        assert_eq!(err.var, var);
    }
}

#[test]
fn kafka_tls_is_on_unless_the_local_broker_turns_it_off() {
    assert!(config(&[]).expect("valid").kafka.tls);
    let local = config(&[("KAFKA_SECURITY", "msk-iam"), ("KAFKA_TLS", "false")]).expect("valid");
    assert!(!local.kafka.tls);
    let err = config(&[("KAFKA_TLS", "no")]).expect_err("not a flag");
    assert_eq!(err.var, "KAFKA_TLS");
    let err = config(&[("KAFKA_TLS", "false")]).expect_err("plaintext has no TLS to turn off");
    assert!(err.reason.contains("plaintext"), "{err}");
}
