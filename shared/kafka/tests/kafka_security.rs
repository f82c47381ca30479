//! Start-up with KAFKA_SECURITY=msk-iam, which reads AWS credentials from the process
//! environment: a binary of its own, so that setting the environment races no other test.
//! Needs no broker: nothing connects before the first request.

use std::time::Duration;

use chat_core::config::{KafkaConfig, KafkaSecurity};
use chat_core::publish::PublishError;
use chat_kafka::{self as kafka, KafkaPublisher};

fn msk_iam() -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: "127.0.0.1:1".into(),
        security: KafkaSecurity::MskIam,
        chat_topic: "chat-events".into(),
        dead_letter_topic: "chat-events-dlq".into(),
        timeout: Duration::from_secs(2),
        region: "eu-west-1".into(),
        tls: true,
    }
}

#[test]
fn msk_iam_start_up_needs_aws_credentials_and_says_so() {
    // One test function: the environment is the process's.
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ] {
        std::env::remove_var(var);
    }
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws/config");
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws/credentials",
    );

    let err = KafkaPublisher::new(&msk_iam())
        .err()
        .expect("no credentials, no producer");
    assert!(matches!(err, PublishError::Rejected(_)), "{err}");
    assert!(err.to_string().contains("no AWS credentials"), "{err}");
    assert!(err.to_string().contains("AWS_PROFILE"), "{err}");

    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    std::env::set_var(
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    );
    let settings = kafka::client_config(&msk_iam()).expect("credentials from the environment");
    assert_eq!(settings.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(settings.get("sasl.mechanism"), Some("OAUTHBEARER"));
    KafkaPublisher::new(&msk_iam()).expect("a producer signs its first token at start");

    // Topics on MSK are created with the cluster: set-up only checks them, and says how.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let err = runtime
        .block_on(kafka::ensure_topics(&msk_iam(), &[("chat-events", 1)]))
        .expect_err("no broker answers");
    assert!(err.to_string().contains("kafka-topics.sh"), "{err}");
}
