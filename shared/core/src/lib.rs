//! `chat-core`: what every part of the chat shares and nothing of AWS. The domain and its rules
//! ([`domain`], [`events`], [`guard`], [`idempotency`]), one error type ([`error`]), the typed
//! configuration ([`config`]), and the ports the other crates implement: the store
//! ([`store`], one trait per capability), the publisher ([`publish`]) and the pusher ([`push`],
//! with the frames a socket receives). What is kept only for the original app's clients is
//! listed, with its switches, in [`compat`].

pub mod compat;
pub mod config;
pub mod domain;
pub mod emf;
pub mod error;
pub mod events;
pub mod guard;
pub mod idempotency;
pub mod known_users;
pub mod limits;
pub mod publish;
pub mod push;
pub mod signup;
pub mod store;
pub mod trace;
pub mod usage;

pub use config::Config;
pub use error::ChatError;
pub use known_users::{KnownUsers, KNOWN_USER_TTL};
