//! What every function of the chat backend has in common: configuration, domain types and
//! their validation, chat events, one error type with its HTTP mapping, the DynamoDB store and
//! the Kafka producer. Functions stay thin: they build a [`context::AppContext`] once per process
//! and borrow it on every request.

pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod events;
pub mod kafka;
pub mod store;

pub use config::Config;
pub use error::ChatError;
