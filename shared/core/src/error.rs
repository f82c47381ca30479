//! The one error type of the API and its mapping to HTTP, in one place.
//!
//! 4xx errors carry a reason written for the client. 5xx errors carry no internals: the cause
//! is logged where the error is turned into a response, and the client gets a generic text.

use crate::config::ConfigError;
use crate::domain::ValidationError;

/// A backing service, named in logs and in 503 replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Kafka,
    DynamoDb,
    WebSocketApi,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Kafka => "Kafka",
            Service::DynamoDb => "DynamoDB",
            Service::WebSocketApi => "the WebSocket API",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    BadRequest(String),
    /// No verified caller where one is required (401).
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request conflicts with what is stored now, and may succeed soon (409).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but contradicts an earlier request (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The caller is over a rate limit; worth retrying after `retry_after` seconds (429).
    #[error("{what}")]
    TooManyRequests { what: String, retry_after: u32 },
    /// A backing service did not answer in time or refused to; worth retrying.
    #[error("{service} is unavailable: {cause}")]
    Unavailable { service: Service, cause: String },
    /// A bug or a misconfiguration; the cause is for the logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl ChatError {
    pub fn status(&self) -> u16 {
        match self {
            ChatError::BadRequest(_) => 400,
            ChatError::Unauthorized(_) => 401,
            ChatError::Forbidden(_) => 403,
            ChatError::NotFound(_) => 404,
            ChatError::MethodNotAllowed(_) => 405,
            ChatError::PayloadTooLarge(_) => 413,
            ChatError::UnsupportedMediaType(_) => 415,
            ChatError::Conflict(_) => 409,
            ChatError::Unprocessable(_) => 422,
            ChatError::TooManyRequests { .. } => 429,
            ChatError::Unavailable { .. } => 503,
            ChatError::Internal(_) => 500,
        }
    }

    /// What the client is told: the reason for a 4xx, nothing internal for a 5xx.
    pub fn public_message(&self) -> String {
        match self {
            ChatError::Unavailable { service, .. } => {
                format!("{service} is temporarily unavailable; retry shortly")
            }
            ChatError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// The `Retry-After` header value, for errors worth retrying.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ChatError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            ChatError::Unavailable { .. } | ChatError::Conflict(_) => Some(RETRY_AFTER_SECONDS),
            _ => None,
        }
    }

    /// The JSON body of the reply: `{"error": "..."}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.public_message() }).to_string()
    }

    pub fn is_server_error(&self) -> bool {
        self.status() >= 500
    }
}

impl From<ValidationError> for ChatError {
    fn from(e: ValidationError) -> Self {
        ChatError::BadRequest(e.0)
    }
}

impl From<ConfigError> for ChatError {
    fn from(e: ConfigError) -> Self {
        ChatError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_mapped_in_one_place() {
        let cases = [
            (ChatError::BadRequest("x".into()), 400),
            (ChatError::Unauthorized("x".into()), 401),
            (ChatError::Forbidden("x".into()), 403),
            (ChatError::NotFound("x".into()), 404),
            (ChatError::MethodNotAllowed("x".into()), 405),
            (ChatError::PayloadTooLarge("x".into()), 413),
            (ChatError::UnsupportedMediaType("x".into()), 415),
            (
                ChatError::Unavailable {
                    service: Service::Kafka,
                    cause: "timeout".into(),
                },
                503,
            ),
            (ChatError::Internal("x".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            assert_eq!(error.retry_after().is_some(), status == 503);
        }
    }

    #[test]
    fn client_errors_tell_the_reason() {
        let body = ChatError::Forbidden("only the author may edit".into()).body();
        assert_eq!(body, r#"{"error":"only the author may edit"}"#);
    }

    #[test]
    fn server_errors_hide_their_cause() {
        let secret = "connect to 10.1.2.3:9092 failed: Broker transport failure";
        for error in [
            ChatError::Unavailable {
                service: Service::Kafka,
                cause: secret.into(),
            },
            ChatError::Internal(secret.into()),
        ] {
            assert!(!error.body().contains("10.1.2.3"), "{}", error.body());
            assert!(error.is_server_error());
        }
        let unavailable = ChatError::Unavailable {
            service: Service::DynamoDb,
            cause: secret.into(),
        };
        assert_eq!(
            unavailable.body(),
            r#"{"error":"DynamoDB is temporarily unavailable; retry shortly"}"#
        );
    }

    #[test]
    fn validation_errors_are_bad_requests() {
        let error: ChatError = ValidationError("message text must not be empty".into()).into();
        assert_eq!(error.status(), 400);
        assert_eq!(error.public_message(), "message text must not be empty");
    }
}
