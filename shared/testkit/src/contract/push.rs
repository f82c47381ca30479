//! The pusher's contract: what the Management API client does against the local API Gateway
//! and [`crate::MemoryPusher`] must do too. A [`Sockets`] harness opens connections and tells
//! what their clients received; the cases run against the fake in `chat-testkit`'s tests and
//! against real sockets of `make test`'s gateway in the end-to-end tests, through
//! [`crate::push_contract!`].

use std::time::Duration;

use async_trait::async_trait;
use chat_core::push::{PushError, Pusher};

/// Clients of the WebSocket API, and the pusher that reaches them.
#[async_trait]
pub trait Sockets: Send + Sync {
    type Pusher: Pusher;

    fn pusher(&self) -> &Self::Pusher;

    /// Opens a connection and returns its id, once pushes to it are accepted.
    async fn open(&self) -> String;

    /// The frames its client received, in order, once `count` arrived or after a short wait.
    async fn received(&self, connection_id: &str, count: usize) -> Vec<Vec<u8>>;

    /// Whether its client saw the connection closed (within a short wait).
    async fn closed(&self, connection_id: &str) -> bool;
}

/// How long a case waits for what a client should not receive.
pub const QUIET: Duration = Duration::from_millis(300);

/// Runs every case of the pusher's contract as a test, each with the harness `$make` (an
/// expression of a future) gives it.
#[macro_export]
macro_rules! push_contract {
    ($make:expr) => {
        $crate::push_contract!(@cases $make;
            frames_reach_their_connection_in_order_and_no_other,
            a_connection_nobody_opened_is_gone,
            a_disconnected_connection_is_closed_and_then_gone,
            disconnecting_twice_is_no_error);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let sockets = $make.await;
                $crate::contract::push::$case(&sockets).await;
            }
        )*
    };
}

pub async fn frames_reach_their_connection_in_order_and_no_other<S: Sockets>(sockets: &S) {
    let (a, b) = (sockets.open().await, sockets.open().await);
    let frames: Vec<Vec<u8>> = (1..=3)
        .map(|n| format!("{{\"n\": {n}}}").into_bytes())
        .collect();
    for frame in &frames {
        sockets.pusher().push(&a, frame).await.expect("pushed");
    }
    assert_eq!(sockets.received(&a, 3).await, frames);
    assert!(sockets.received(&b, 0).await.is_empty(), "b got a's frames");
}

pub async fn a_connection_nobody_opened_is_gone<S: Sockets>(sockets: &S) {
    let pushed = sockets.pusher().push("bm9ib2R5LWhvbGRzLWl0", b"{}").await;
    assert_eq!(pushed, Err(PushError::Gone));
}

pub async fn a_disconnected_connection_is_closed_and_then_gone<S: Sockets>(sockets: &S) {
    let id = sockets.open().await;
    sockets
        .pusher()
        .disconnect(&id)
        .await
        .expect("disconnected");
    assert!(
        sockets.closed(&id).await,
        "the client's socket is still open"
    );
    assert_eq!(
        sockets.pusher().push(&id, b"{}").await,
        Err(PushError::Gone)
    );
}

pub async fn disconnecting_twice_is_no_error<S: Sockets>(sockets: &S) {
    let id = sockets.open().await;
    sockets.pusher().disconnect(&id).await.expect("first");
    assert_eq!(sockets.pusher().disconnect(&id).await, Ok(()));
    assert_eq!(
        sockets.pusher().disconnect("bm8tc3VjaC1zb2NrZXQ").await,
        Ok(())
    );
}

/// The harness of the fake: a connection is open once [`crate::MemoryPusher::open`] said so,
/// its client receives what was pushed to it, and it is closed once disconnected.
pub struct MemorySockets {
    pub pusher: crate::MemoryPusher,
    next: std::sync::atomic::AtomicUsize,
}

impl Default for MemorySockets {
    fn default() -> Self {
        Self {
            pusher: crate::MemoryPusher::new(),
            next: std::sync::atomic::AtomicUsize::new(1),
        }
    }
}

#[async_trait]
impl Sockets for MemorySockets {
    type Pusher = crate::MemoryPusher;

    fn pusher(&self) -> &crate::MemoryPusher {
        &self.pusher
    }

    async fn open(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("mem{n}=");
        self.pusher.open(&id);
        id
    }

    async fn received(&self, connection_id: &str, _count: usize) -> Vec<Vec<u8>> {
        self.pusher.raw_frames(connection_id)
    }

    async fn closed(&self, connection_id: &str) -> bool {
        self.pusher
            .disconnected()
            .iter()
            .any(|id| id == connection_id)
    }
}
