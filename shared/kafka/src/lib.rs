//! `chat-kafka`: the producer every publishing function creates once per process (implementing
//! `chat-core`'s publisher port), the consumer settings our consumers share, topic
//! administration for set-up and tests, and how clients authenticate (plaintext, or MSK IAM or
//! SCRAM, over TLS on AWS).

mod admin;
mod client;
pub mod msk_iam;
mod producer;
mod scram;
mod setup_error;

pub use admin::{check_broker, ensure_topics, partition_count, partition_ends};
pub use client::{
    client_config, consumer_config, KafkaClientConfig, KafkaContext, KafkaSetupError,
};
pub use producer::KafkaPublisher;
pub use scram::parse_scram_secret;
