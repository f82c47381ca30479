//! What every function of the chat backend has in common: configuration, domain types and
//! their validation, chat events, one error type with its HTTP mapping, the DynamoDB store and
//! the Kafka producer. Functions stay thin: they build a [`context::AppContext`] once per process
//! and borrow it on every request.

pub mod authorize;
pub mod aws;
pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod kafka;
pub mod push;
pub mod store;
pub mod testing;
pub mod ws;

pub use config::Config;
pub use error::ChatError;

/// Logs for CloudWatch (or the terminal): plain lines, no colours, level from `RUST_LOG`
/// (default `info`). Call once at the start of `main`.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
}
