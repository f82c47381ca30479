//! Serving one accepted WebSocket as API Gateway does, with a slow client costing only itself:
//! frames pushed to it wait in a bounded queue and are written by a task of their own, so that
//! a write that stalls never holds up reading, the idle and maximum-age timers or any other
//! socket. A write that stalls past [`WRITE_TIMEOUT`], or a queue that fills, closes the socket
//! (pushes to it then get 410).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, Notify};

/// API Gateway's limits for WebSocket APIs.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const MAX_CONNECTION: Duration = Duration::from_secs(2 * 60 * 60);
/// Frames queued for one socket; a push that finds the queue full closes the socket.
pub const QUEUE_FRAMES: usize = 1024;
/// The longest one frame's write may take before the socket is given up.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// `$default` invocations in flight for one socket; a frame beyond them is refused with an
/// error frame, as API Gateway throttles.
pub const MAX_DEFAULT_IN_FLIGHT: usize = 8;

const GOING_AWAY: u16 = 1001;
const NORMAL: u16 = 1000;
const TOO_BIG: u16 = 1009;

/// What the emulator knows of a socket, for the events it sends the route functions.
#[derive(Clone)]
pub struct SocketInfo {
    pub connection_id: String,
    pub connected_at: DateTime<Utc>,
    pub domain_name: String,
    pub source_ip: String,
    pub user_agent: String,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    /// What the `$connect` authorizer returned; API Gateway passes it to every route.
    pub authorizer: HashMap<String, serde_json::Value>,
}

/// A live socket, as the Management API sees it.
pub struct Live {
    pub sender: mpsc::Sender<Command>,
    /// Closes the socket at once, whatever its queue holds.
    pub closer: Arc<Notify>,
    pub connected_at: DateTime<Utc>,
    pub last_active_at: Arc<Mutex<DateTime<Utc>>>,
    pub source_ip: String,
    pub user_agent: String,
}

/// The live sockets, by connection id.
#[derive(Default)]
pub struct Registry(Mutex<HashMap<String, Live>>);

impl Registry {
    pub fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Live>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What the Management API asks a socket to do.
pub enum Command {
    Send(Bytes),
    /// A close frame (code, reason), after the frames queued before it.
    Close(u16, &'static str),
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Whether a receive error is a frame over the size limit.
fn too_large(e: axum::Error) -> bool {
    e.into_inner()
        .downcast::<tokio_tungstenite::tungstenite::Error>()
        .is_ok_and(|e| matches!(*e, tokio_tungstenite::tungstenite::Error::Capacity(_)))
}

/// Serves one accepted socket until it closes, idles out, reaches its maximum age, stalls or
/// is closed through `closer`; every frame from the client goes to `on_message`, which
/// declines (`None`) when the socket has too many calls in flight.
pub async fn serve<F, Fut>(
    socket: WebSocket,
    sender: mpsc::Sender<Command>,
    mut commands: mpsc::Receiver<Command>,
    closer: Arc<Notify>,
    last_active_at: Arc<Mutex<DateTime<Utc>>>,
    connection_id: &str,
    on_message: F,
) where
    F: Fn(Vec<u8>, bool) -> Option<Fut>,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (mut sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(async move {
        while let Some(command) = commands.recv().await {
            let (frame, last) = match command {
                Command::Send(bytes) => (
                    match String::from_utf8(bytes.to_vec()) {
                        Ok(text) => Message::Text(text.into()),
                        Err(_) => Message::Binary(bytes),
                    },
                    false,
                ),
                Command::Close(code, reason) => (close(code, reason), true),
            };
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)).await {
                Ok(Ok(())) if !last => {}
                Ok(Ok(())) => return "closed",
                Ok(Err(_)) => return "write failed",
                Err(_) => return "write stalled",
            }
        }
        "closed"
    });
    let deadline = tokio::time::sleep(MAX_CONNECTION);
    tokio::pin!(deadline);
    let mut idle = Box::pin(tokio::time::sleep(IDLE_TIMEOUT));
    // The close frame to say goodbye with, if the writer is still there to send it.
    let goodbye: Option<(u16, &'static str)> = loop {
        tokio::select! {
            _ = &mut deadline => break Some((GOING_AWAY, "Going away")),
            _ = &mut idle => break Some((GOING_AWAY, "Going away")),
            _ = closer.notified() => break None,
            ended = &mut writer => {
                let why = ended.unwrap_or("writer failed");
                if why != "closed" {
                    tracing::warn!(connection = %chat_core::push::log_tag(connection_id), why, "closing a socket that does not take its frames");
                }
                break None;
            }
            incoming = stream.next() => {
                *last_active_at.lock().unwrap_or_else(|p| p.into_inner()) = Utc::now();
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        dispatch(&on_message, &sender, text.as_bytes().to_vec(), false, connection_id);
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        dispatch(&on_message, &sender, bytes.to_vec(), true, connection_id);
                    }
                    Some(Ok(Message::Close(_))) | None => break Some((NORMAL, "")),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        break too_large(e).then_some((TOO_BIG, "Message too big"));
                    }
                }
            }
        }
    };
    if !writer.is_finished() {
        // Frames already queued go first, then the close frame; a writer that cannot finish
        // within its timeout is stopped (the TCP connection closes under it).
        let said_goodbye = goodbye
            .is_some_and(|(code, reason)| sender.try_send(Command::Close(code, reason)).is_ok());
        if !said_goodbye
            || tokio::time::timeout(WRITE_TIMEOUT, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
    }
}

/// Hands a client frame to `$default`, or tells the client it is throttled.
fn dispatch<F, Fut>(
    on_message: &F,
    sender: &mpsc::Sender<Command>,
    bytes: Vec<u8>,
    binary: bool,
    connection_id: &str,
) where
    F: Fn(Vec<u8>, bool) -> Option<Fut>,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    match on_message(bytes, binary) {
        Some(call) => {
            tokio::spawn(call);
        }
        None => {
            let error = serde_json::json!({
                "message": "Too Many Requests",
                "connectionId": connection_id,
                "requestId": uuid::Uuid::new_v4().to_string(),
            });
            let _ = sender.try_send(Command::Send(Bytes::from(error.to_string())));
        }
    }
}
