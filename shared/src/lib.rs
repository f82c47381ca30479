//! What every function of the chat backend has in common: configuration, domain types and
//! their validation, chat events, one error type with its HTTP mapping, the store, and how a
//! function starts ([`lambda`]). Functions stay thin: they build a [`context::AppContext`]
//! once per process and borrow it on every request.
//!
//! Features keep each function lean: `kafka` (the producer, librdkafka) only for functions
//! that publish or consume, `push` (the Management API client) only for the stream processor,
//! `admin` (creating tables and topics) only for set-up and tests, and `testing` (in-memory
//! fakes) only for unit tests.

pub mod auth;
pub mod aws;
pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod events;
pub mod guard;
pub mod http;
pub mod idempotency;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lambda;
pub mod metrics;
pub mod publish;
#[cfg(feature = "push")]
pub mod push;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trace;
pub mod ws;

pub use config::Config;
pub use context::Kafka;
pub use error::ChatError;
