use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use super::*;
use crate::parse_scram_secret;
use rdkafka::producer::FutureProducer;
use std::time::Duration;

fn kafka_config(security: KafkaSecurity) -> KafkaConfig {
    KafkaConfig {
        // Nothing listens on port 1: clients are created, never connected.
        bootstrap_servers: "127.0.0.1:1".into(),
        security,
        chat_topic: "chat-events".into(),
        dead_letter_topic: "chat-events-dlq".into(),
        timeout: Duration::from_secs(2),
        region: "eu-west-1".into(),
        tls: true,
    }
}

#[test]
fn plaintext_clients_neither_encrypt_nor_authenticate() {
    let c = client_config(&kafka_config(KafkaSecurity::Plaintext)).expect("settings");
    assert_eq!(c.get("security.protocol"), Some("plaintext"));
    assert_eq!(c.get("sasl.mechanism"), None);
    assert!(!c.uses_msk_iam());
}

#[test]
fn scram_clients_authenticate_over_tls_with_the_configured_user() {
    let c = client_config(&kafka_config(KafkaSecurity::Scram(
        ScramCredentials::Inline {
            username: "chat".into(),
            password: "s3cret".into(),
        },
    )))
    .expect("settings");
    assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!(c.get("sasl.username"), Some("chat"));
    assert_eq!(c.get("sasl.password"), Some("s3cret"));
    assert_eq!(c.get("ssl.ca.location"), Some("probe"));
    // librdkafka accepts the settings (TLS support is compiled in).
    let _producer: FutureProducer<KafkaContext> = c.create().expect("a SASL_SSL producer");
}

#[test]
fn without_tls_sasl_goes_in_plaintext_as_the_local_brokers_iam_listener_takes_it() {
    let mut config = kafka_config(KafkaSecurity::Scram(ScramCredentials::Inline {
        username: "chat".into(),
        password: "s3cret".into(),
    }));
    config.tls = false;
    let c = client_config(&config).expect("settings");
    assert_eq!(c.get("security.protocol"), Some("sasl_plaintext"));
    assert_eq!(c.get("ssl.ca.location"), None);
}

#[test]
fn an_unreadable_scram_secret_stops_the_client_at_start_naming_the_secret() {
    // No Secrets Manager is reachable from the tests: the read fails within the timeout.
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_chat-AbCdEf";
    let started = Instant::now();
    let mut config = kafka_config(KafkaSecurity::Scram(ScramCredentials::Secret {
        arn: arn.into(),
    }));
    // Bounded by the configured timeout: a short one keeps the test quick.
    config.timeout = Duration::from_millis(300);
    let err = client_config(&config).err().expect("no secret, no client");
    assert!(
        matches!(&err, KafkaSetupError::ScramSecret { arn: a, .. } if a == arn),
        "{err}"
    );
    assert!(err.to_string().contains(arn), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn scram_secrets_are_read_as_msk_writes_them() {
    assert_eq!(
        parse_scram_secret(r#"{"username": "chat", "password": "p\"w"}"#),
        Ok(("chat".into(), "p\"w".into()))
    );
    for bad in [
        "",
        "chat:secret",
        r#"{"username": "chat"}"#,
        r#"{"username": "", "password": "x"}"#,
        r#"{"user": "chat", "password": "hunter2"}"#,
    ] {
        let err = parse_scram_secret(bad).expect_err(bad);
        assert!(!err.contains("hunter2"), "the secret leaks into {err}");
    }
}

#[derive(Debug)]
struct CountingCredentials(Arc<AtomicUsize>);

impl ProvideCredentials for CountingCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.fetch_add(1, Ordering::SeqCst);
        future::ProvideCredentials::ready(Ok(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        )))
    }
}

#[test]
fn librdkafka_asks_the_context_for_msk_iam_tokens() {
    let asked = Arc::new(AtomicUsize::new(0));
    let tokens = MskIamTokens::new(
        "eu-west-1",
        SharedCredentialsProvider::new(CountingCredentials(asked.clone())),
        SystemTime::now,
        Duration::from_secs(2),
    );
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("security.protocol", "sasl_ssl")
        .set("sasl.mechanism", "OAUTHBEARER");
    let client = KafkaClientConfig {
        config,
        context: KafkaContext::with_msk_iam(Arc::new(tokens)),
    };
    // The producer's polling thread serves librdkafka's first token request.
    let _producer: FutureProducer<KafkaContext> = client.create().expect("producer");
    let deadline = Instant::now() + Duration::from_secs(5);
    while asked.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        asked.load(Ordering::SeqCst) >= 1,
        "librdkafka never asked for a token"
    );
}

#[test]
fn without_msk_iam_the_context_has_no_token_to_give() {
    let err = KafkaContext::default()
        .generate_oauth_token(None)
        .err()
        .expect("no token");
    assert!(err.to_string().contains("msk-iam"), "{err}");
}
