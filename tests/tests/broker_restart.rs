//! Kafka restarted under a steady load of sends (its own test binary, so that no other test
//! runs while the broker is away): every acknowledged send is stored once and reaches the
//! group's socket, and the event source carries on by itself, with no step by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use e2e_tests::load::Reader;
use e2e_tests::load::SENDERS;
use e2e_tests::{api_url, fresh_user, history, http};
use serde_json::{json, Value};

/// Sends per second, and for how long.
const RATE: u64 = 20;
const LOAD: Duration = Duration::from_secs(14);
/// When, into the load, the broker is stopped.
const RESTART_AT: Duration = Duration::from_secs(3);

/// Stops the stack's broker (SIGTERM) and starts it again on the same data.
fn restart_broker() -> Duration {
    let dir = std::env::var("CHAT_KAFKA_DIR").unwrap_or_else(|_| {
        panic!(
            "CHAT_KAFKA_DIR is not set: run the tests with `make test`, which starts a broker \
             of its own (one given by KAFKA_BOOTSTRAP_SERVERS is not restarted by tests)"
        )
    });
    e2e_tests::load::restart_service(Path::new(&dir), "Kafka")
}

#[derive(Debug)]
struct Send {
    text: String,
    sent_at: Duration,
    status: Option<u16>,
    message_id: Option<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_a_broker_restart_stored_and_pushed_once() {
    let user = fresh_user(false).await;
    let senders = e2e_tests::senders_in_group_of(&user, SENDERS).await;
    let reader = Reader::open(user.group_id).await;
    let frames = reader.frames.clone();

    let tag = format!("restart-{}", uuid::Uuid::new_v4().simple());
    let start = Instant::now();
    let restart = tokio::task::spawn_blocking(|| {
        std::thread::sleep(RESTART_AT);
        let took = restart_broker();
        (RESTART_AT, RESTART_AT + took)
    });
    let total = RATE * LOAD.as_secs();
    let mut sends = Vec::new();
    for k in 0..total {
        let due = start + Duration::from_millis(k * 1000 / RATE);
        tokio::time::sleep_until(due.into()).await;
        let text = format!("{tag}-{k}");
        let user_id = senders[k as usize % senders.len()];
        sends.push(tokio::spawn(async move {
            let sent_at = start.elapsed();
            let response = http()
                .post(format!("{}/send-message/", api_url()))
                .json(&json!({"user_id": user_id, "message": text}))
                .send()
                .await;
            let (status, message_id) = match response {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    (Some(status), body["message_id"].as_u64())
                }
                Err(_) => (None, None),
            };
            Send {
                text,
                sent_at,
                status,
                message_id,
            }
        }));
    }
    let (down_at, up_at) = restart.await.expect("restart");
    let mut results = Vec::new();
    for send in sends {
        results.push(send.await.expect("send task"));
    }

    // Every request got an answer: accepted, or 503 while the broker was away, or 429 when the
    // requests held up meanwhile reach the sender's rate limit all at once; nothing else.
    for send in &results {
        assert!(
            matches!(send.status, Some(202 | 503 | 429)),
            "{send:?} (broker down from {down_at:?} to {up_at:?})"
        );
    }
    let acked: BTreeMap<u64, &str> = results
        .iter()
        .filter(|s| s.status == Some(202))
        .map(|s| {
            (
                s.message_id.expect("a 202 names its message"),
                s.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        acked.len(),
        results.iter().filter(|s| s.status == Some(202)).count(),
        "two acknowledged sends got the same id"
    );
    let acked_after_restart = results
        .iter()
        .filter(|s| s.status == Some(202) && s.sent_at > up_at)
        .count();
    assert!(
        acked_after_restart > 0,
        "no send was accepted after the broker came back at {up_at:?}"
    );

    // Every acknowledged message reaches the socket: the event source carried on by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pushed: BTreeSet<u64> = frames
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|f| f["id"].as_u64())
            .collect();
        let missing: Vec<_> = acked.keys().filter(|id| !pushed.contains(id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged messages never reached the socket, e.g. {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Frames still in flight for sends that were refused but written all the same.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(reader);

    // History holds each acknowledged message once, with its text, and nothing we did not send.
    let history = history(user.group_id).await;
    let mut stored: BTreeMap<u64, &str> = BTreeMap::new();
    let mut texts = BTreeSet::new();
    for m in &history {
        assert!(
            stored.insert(m.id.get(), m.message.as_str()).is_none(),
            "message {} is stored twice",
            m.id
        );
        assert!(
            texts.insert(m.message.as_str()),
            "{:?} is stored twice",
            m.message
        );
        assert!(
            m.message.as_str().starts_with(&tag),
            "a stranger's message {m:?}"
        );
    }
    for (id, text) in &acked {
        assert_eq!(stored.get(id), Some(text), "acknowledged message {id}");
    }

    // Each message is pushed once: the restart made the event source neither lose nor repeat.
    let frames = frames.lock().expect("lock").clone();
    let mut pushed_ids = BTreeMap::<u64, usize>::new();
    for frame in &frames {
        assert_eq!(frame["event"], "created", "{frame}");
        let id = frame["id"].as_u64().expect("id");
        assert_eq!(
            stored.get(&id).copied(),
            frame["message"].as_str(),
            "{frame}"
        );
        *pushed_ids.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = pushed_ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "pushed more than once: {repeated:?}");
    let order: Vec<u64> = frames.iter().filter_map(|f| f["id"].as_u64()).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "frames out of order: {order:?}"
    );
    eprintln!(
        "{} sends, {} accepted ({acked_after_restart} after the restart), {} refused; broker \
         down from {down_at:?} to {up_at:?}; {} stored, {} frames",
        results.len(),
        acked.len(),
        results
            .iter()
            .filter(|s| matches!(s.status, Some(503 | 429)))
            .count(),
        stored.len(),
        frames.len()
    );
}
