//! Why a Kafka client could not be set up.

use chat_core::publish::PublishError;

use crate::msk_iam;

/// A client that cannot be set up: fails the process at start, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("cannot read the SCRAM credentials from secret {arn}: {cause}")]
    ScramSecret { arn: String, cause: String },
    #[error(transparent)]
    MskIam(#[from] msk_iam::TokenError),
}

impl From<KafkaSetupError> for PublishError {
    fn from(e: KafkaSetupError) -> Self {
        PublishError::Rejected(e.to_string())
    }
}
