//! `chat-testkit`: what the tests share, in one place.
//! - Fakes of the ports, for unit tests of logic only: [`MemoryStore`], [`MemoryPublisher`],
//!   [`MemoryPusher`]. Each fails on demand the same way ([`Fallible`]).
//! - Requests and events as API Gateway delivers them, and a configuration per mode
//!   ([`requests`]).
//! - The running services of `make test` (or `make services`) for integration tests, failing
//!   with what to start when one is missing ([`services`]), and messages to fill a store with
//!   ([`messages`]).
//! - The contract suites each real service and its fake must pass alike ([`contract`]).

pub mod contract;
mod memory_store;
pub mod messages;
mod publisher;
mod pusher;
pub mod requests;
pub mod services;

pub use memory_store::MemoryStore;
pub use publisher::{MemoryPublisher, PublishedRecord};
pub use pusher::MemoryPusher;
pub use requests::{Fakes, TestContext};

/// Makes a fake fail on demand: every call fails with the error set, until it is cleared.
pub struct FailSwitch<E>(std::sync::Mutex<Option<E>>);

impl<E> Default for FailSwitch<E> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(None))
    }
}

impl<E: Clone> FailSwitch<E> {
    fn set(&self, error: Option<E>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// The error a call must fail with now, if any.
    pub fn check(&self) -> Result<(), E> {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The one way to make a fake fail: from [`Fallible::fail_with`] on, every call fails with
/// that error; after [`Fallible::recover`] they succeed again.
pub trait Fallible {
    type Error: Clone;

    fn failure(&self) -> &FailSwitch<Self::Error>;

    fn fail_with(&self, error: Self::Error) {
        self.failure().set(Some(error));
    }

    fn recover(&self) {
        self.failure().set(None);
    }
}

#[cfg(test)]
mod contract_of_the_fakes {
    use crate::MemoryStore;

    crate::store_contract!(async { MemoryStore::new() });

    mod push {
        use crate::contract::push::MemorySockets;

        crate::push_contract!(async { MemorySockets::default() });
    }

    mod publisher {
        use crate::MemoryPublisher;

        crate::publisher_contract!(async {
            let topic = "contract-topic".to_owned();
            (MemoryPublisher::with_topics(&[&topic]), topic)
        });
    }
}
