//! A steady load of sends with `client_message_id`, each retried until it gets a 2xx (as a
//! careful client does), with sockets reading the group, and the checks every fault test makes
//! afterwards: each acknowledged send is stored exactly once and in order, each reading socket
//! got every message of its group in order (repeats only of the same id with the same content),
//! and the stack still works.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_core::domain::{GroupId, User};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::{api_url, full_history, http, subscribe};

/// How long a send is retried before the test gives up on it.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// One send and what it took.
#[derive(Debug, Clone)]
pub struct Ack {
    pub k: u64,
    pub text: String,
    pub message_id: Option<u64>,
    pub attempts: u32,
    pub sent_at: Duration,
    pub acked_at: Duration,
}

/// Sends `text` with `client_message_id` until the API answers 2xx, as a client should: again
/// after a 503 or 504, and after a 429 once its `Retry-After` is over (the requests held up by
/// an outage reach the sender's rate limit all at once when it ends).
pub async fn send_until_acked(
    user_id: u64,
    text: &str,
    client_message_id: &str,
) -> (Option<u64>, u32) {
    let deadline = Instant::now() + GIVE_UP_AFTER;
    let mut attempts = 0;
    while Instant::now() < deadline {
        attempts += 1;
        let reply = http()
            .post(format!("{}/send-message/", api_url()))
            .json(&json!({"user_id": user_id, "message": text, "client_message_id": client_message_id}))
            .send()
            .await;
        if let Ok(reply) = reply {
            let status = reply.status();
            if status.as_u16() == 429 {
                let wait = reply
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return (body["message_id"].as_u64(), attempts);
            }
            assert!(
                status.as_u16() == 503 || status.as_u16() == 504,
                "send {client_message_id} got {status}: {body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (None, attempts)
}

/// A socket reading a group's frames in the background.
pub struct Reader {
    pub frames: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    pub async fn open(group: GroupId) -> Reader {
        let mut socket = subscribe(&format!("/subscribe/{group}")).await;
        let frames: Arc<Mutex<Vec<Value>>> = Arc::default();
        let task = {
            let frames = frames.clone();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = socket.next().await {
                    if let Message::Text(text) = frame {
                        if let Ok(value) = serde_json::from_str::<Value>(text.as_str()) {
                            frames.lock().expect("lock").push(value);
                        }
                    }
                }
            })
        };
        Reader { frames, task }
    }

    pub fn is_open(&self) -> bool {
        !self.task.is_finished()
    }

    /// The ids of the created frames, in arrival order, with repeats.
    pub fn created(&self) -> Vec<(u64, String)> {
        self.frames
            .lock()
            .expect("lock")
            .iter()
            .filter(|f| f["event"] == "created")
            .filter_map(|f| Some((f["id"].as_u64()?, f["message"].as_str()?.to_owned())))
            .collect()
    }
}

/// People sending a load in one group: 10 a second from one person is a script the send limit
/// refuses; spread over this many, each stays within it.
pub const SENDERS: usize = 8;

/// Sends `count` messages at `rate` a second, each until acknowledged, while `fault` runs,
/// from [`SENDERS`] people of `user`'s group in turn.
pub async fn load_with_fault<F>(user: &User, tag: &str, count: u64, rate: u64, fault: F) -> Vec<Ack>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let senders = crate::senders_in_group_of(user, SENDERS).await;
    let start = Instant::now();
    let fault = tokio::spawn(fault);
    let mut sends = Vec::new();
    for k in 0..count {
        tokio::time::sleep_until((start + Duration::from_millis(k * 1000 / rate)).into()).await;
        let user_id = senders[k as usize % senders.len()];
        let tag = tag.to_owned();
        sends.push(tokio::spawn(async move {
            let text = format!("{tag}-{k}");
            let sent_at = start.elapsed();
            let (message_id, attempts) =
                send_until_acked(user_id, &text, &format!("{tag}:{k}")).await;
            Ack {
                k,
                text,
                message_id,
                attempts,
                sent_at,
                acked_at: start.elapsed(),
            }
        }));
    }
    let mut acks = Vec::new();
    for send in sends {
        acks.push(send.await.expect("send task"));
    }
    fault.await.expect("fault task");
    acks
}

/// What a fault test saw, printed for the closing notes.
#[derive(Debug)]
pub struct Seen {
    pub sent: usize,
    pub acked: usize,
    pub retried: usize,
    pub max_attempts: u32,
    pub stored: usize,
    pub delivered: Vec<usize>,
    pub duplicates: Vec<usize>,
    /// The longest a send took from its first try to its 2xx (what the fault cost a client).
    pub worst_send: Duration,
    /// How long after the history check the readers still waited for messages.
    pub delivery_wait: Duration,
}

/// The checks after a fault: every send acknowledged, stored once in order, delivered to every
/// reader in order, and the stack takes sends at once afterwards.
pub async fn check(name: &str, user: &User, acks: &[Ack], readers: &[&Reader]) -> Seen {
    let unacked: Vec<&Ack> = acks.iter().filter(|a| a.message_id.is_none()).collect();
    assert!(
        unacked.is_empty(),
        "{name}: sends never acknowledged: {unacked:?}"
    );
    let by_id: BTreeMap<u64, &Ack> = acks
        .iter()
        .map(|a| (a.message_id.unwrap_or_default(), a))
        .collect();
    assert_eq!(by_id.len(), acks.len(), "{name}: two sends got one id");
    // Stored exactly once, with the acknowledged id, in order of id (the log's order).
    let deadline = Instant::now() + Duration::from_secs(90);
    let stored = loop {
        let stored: Vec<(u64, String)> = full_history(user.group_id)
            .await
            .into_iter()
            .map(|m| (m.id.get(), m.message.as_str().to_owned()))
            .collect();
        let ids: BTreeSet<u64> = stored.iter().map(|(id, _)| *id).collect();
        if by_id.keys().all(|id| ids.contains(id)) || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let tag_prefix = acks
        .first()
        .map(|a| a.text.rsplit_once('-').map_or("", |(t, _)| t).to_owned())
        .unwrap_or_default();
    let ours: Vec<&(u64, String)> = stored
        .iter()
        .filter(|(_, t)| t.starts_with(&tag_prefix))
        .collect();
    for (id, text) in &ours {
        let ack = by_id.get(id).unwrap_or_else(|| {
            panic!("{name}: stored {id} ({text}) was never acknowledged: a duplicate")
        });
        assert_eq!(&ack.text, text, "{name}: message {id} holds another text");
    }
    assert_eq!(
        ours.len(),
        acks.len(),
        "{name}: {} sends, {} stored",
        acks.len(),
        ours.len()
    );
    // Every reader got every message, each id's first arrival in id order.
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = Instant::now();
    loop {
        let complete = readers.iter().all(|r| {
            let got: BTreeSet<u64> = r.created().iter().map(|(id, _)| *id).collect();
            by_id.keys().all(|id| got.contains(id))
        });
        if complete {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: a reader misses messages: {:?}",
            readers
                .iter()
                .map(|r| {
                    let got: BTreeSet<u64> = r.created().iter().map(|(id, _)| *id).collect();
                    by_id.keys().filter(|id| !got.contains(id)).count()
                })
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut delivered = Vec::new();
    let mut duplicates = Vec::new();
    for reader in readers {
        let created = reader.created();
        let mut first_seen: Vec<u64> = Vec::new();
        let mut repeats = 0;
        for (id, text) in &created {
            if let Some(ack) = by_id.get(id) {
                assert_eq!(&ack.text, text, "{name}: frame {id} with another text");
            }
            if first_seen.contains(id) {
                repeats += 1;
            } else {
                first_seen.push(*id);
            }
        }
        let mut sorted = first_seen.clone();
        sorted.sort_unstable();
        assert_eq!(first_seen, sorted, "{name}: frames out of order");
        delivered.push(
            first_seen
                .iter()
                .filter(|id| by_id.contains_key(id))
                .count(),
        );
        duplicates.push(repeats);
    }
    healthy_after(name, user).await;
    let delivery_wait = started.elapsed();
    let seen = Seen {
        sent: acks.len(),
        acked: acks.len() - unacked.len(),
        retried: acks.iter().filter(|a| a.attempts > 1).count(),
        max_attempts: acks.iter().map(|a| a.attempts).max().unwrap_or(0),
        stored: ours.len(),
        delivered,
        duplicates,
        worst_send: acks
            .iter()
            .map(|a| a.acked_at.saturating_sub(a.sent_at))
            .max()
            .unwrap_or_default(),
        delivery_wait,
    };
    println!("FAULT {name}: {seen:?}");
    // The numbers for a report: CHAT_FAULT_REPORT=file make test.
    if let Ok(path) = std::env::var("CHAT_FAULT_REPORT") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{name}: {seen:?}");
        }
    }
    seen
}

/// The stack's service directories, from `make test`.
pub fn service_dir(what: &str) -> PathBuf {
    let data = std::env::var("CHAT_TEST_DATA").unwrap_or_else(|_| {
        panic!("CHAT_TEST_DATA is not set: run the fault tests with `make test`, which starts services of its own to break")
    });
    Path::new(&data).join(what)
}

/// The pid a service of the stack runs as (its pid file).
pub fn service_pid(dir: &Path, name: &str) -> i32 {
    let file = dir.join(format!("{name}.pid"));
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("no pid file {}: {e}", file.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid file {}: {e}", file.display()))
}

/// Sends `signal` (STOP, CONT, KILL, TERM) to a pid.
pub fn signal(pid: i32, signal: &str) {
    use local_stack::process::Signal;
    let signal = match signal {
        "STOP" => Signal::STOP,
        "CONT" => Signal::CONT,
        "KILL" => Signal::KILL,
        "TERM" => Signal::TERM,
        other => panic!("no signal {other} here"),
    };
    local_stack::process::signal(pid, signal);
}

/// Restarts a service of the stack on its data, as the stack's supervisor started it.
pub fn restart_service(dir: &Path, name: &str) -> Duration {
    let started = Instant::now();
    local_stack::restart(dir, name).unwrap_or_else(|e| panic!("restarting {name} failed: {e}"));
    started.elapsed()
}

/// The stack works on by itself after a fault: a burst of sends, more than there are
/// instances of a function, each accepted at its first try (a client of a producer that a
/// fault left stuck would get 503s long after the fault).
pub async fn healthy_after(name: &str, user: &User) {
    // Fresh people: the load's senders may have spent their send budget.
    let senders = &crate::senders_in_group_of(user, 17).await[1..];
    let replies = futures_util::future::join_all((0..16).map(|i| async move {
        let user_id = senders[i];
        let reply = http()
            .post(format!("{}/send-message/", api_url()))
            .json(&json!({"user_id": user_id, "message": format!("after {i}")}))
            .send()
            .await;
        match reply {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }))
    .await;
    assert!(
        replies.iter().all(|s| *s == 202),
        "{name}: after the fault, sends answered {replies:?}"
    );
}
