//! Kafka clients (the `kafka` feature): the producer every publishing function creates once per
//! process, the consumer settings our consumers share, topic administration for set-up (the
//! `admin` feature), and how they authenticate (plaintext locally, MSK IAM or SCRAM over TLS
//! in the cloud).

#[cfg(feature = "admin")]
mod admin;
mod client;
pub mod msk_iam;
mod producer;
mod scram;

#[cfg(feature = "admin")]
pub use admin::{check_broker, ensure_topics, partition_count, partition_ends};
pub use client::{
    client_config, consumer_config, KafkaClientConfig, KafkaContext, KafkaSetupError,
};
pub use producer::KafkaPublisher;
pub use scram::parse_scram_secret;
