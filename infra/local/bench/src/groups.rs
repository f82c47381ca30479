//! `chat-bench groups`: what the group features cost a user, against the running stack (in
//! trust-client mode, as `make dev` runs): `GET /groups` for a user in `--groups` groups, one of
//! which holds `--messages` messages they have not read; and the latency of a typing frame to
//! `--sockets` sockets of a group; and a socket that follows all the user's groups (its
//! handshake, and a message's way to it). It fills what is missing (the groups, the messages) and
//! reuses what an earlier run left, so that a stack with data in it is measured as it is.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::{client, ms, percentile, timed};

/// The reader (David, group 2) and the writer of the unread messages (Charlie, group 2).
const READER: u64 = 4;
const WRITER: u64 = 3;
/// The first group of both.
const SHARED_GROUP: u64 = 2;
const BIG_GROUP: &str = "bench: many unread";
const SENDS_AT_ONCE: usize = 32;

pub async fn run(url: &str, groups: usize, messages: usize, sockets: usize) -> Result<(), String> {
    let c = client();
    let big = big_group(&c, url).await?;
    fill_groups(&c, url, groups).await?;
    fill_messages(&c, url, big, messages).await?;
    let mine = list(&c, url, READER).await?;
    let unread = mine
        .iter()
        .find(|g| g["group_id"] == big)
        .map(|g| g["unread"].clone())
        .unwrap_or(Value::Null);
    let latencies = timed(100, |_| c.get(format!("{url}/groups?user_id={READER}"))).await?;
    println!(
        "GET /groups, a user in {} groups (one with {messages}+ unread, shown as {unread}): p50 {} p99 {} over 100",
        mine.len(),
        ms(percentile(&latencies, 50.0, Duration::ZERO)),
        ms(percentile(&latencies, 99.0, Duration::ZERO)),
    );
    // The writer's own messages are never unread: counting his reads the most and finds none.
    let own = timed(100, |_| c.get(format!("{url}/groups?user_id={WRITER}"))).await?;
    println!(
        "GET /groups, the writer of those messages (nothing unread, the most read to find it): p50 {} p99 {} over 100",
        ms(percentile(&own, 50.0, Duration::ZERO)),
        ms(percentile(&own, 99.0, Duration::ZERO)),
    );
    all_groups(&c, url, mine.len()).await?;
    typing(url, big, sockets).await
}

/// The reader opens a socket that follows all their groups (`/subscribe?user_id=`): how long
/// its handshake takes (a subscription per group, the per-user limit and presence in each),
/// then how long a message of one of them (group 2, the reader's and the writer's first)
/// takes to reach it.
async fn all_groups(c: &reqwest::Client, url: &str, groups: usize) -> Result<(), String> {
    let group = SHARED_GROUP;
    let ws = url.replacen("http://", "ws://", 1);
    let address = format!("{ws}/subscribe?user_id={READER}");
    let mut handshakes = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let (mut socket, _) = tokio_tungstenite::connect_async(&address)
            .await
            .map_err(|e| format!("an all-groups socket: {e}"))?;
        handshakes.push(started.elapsed());
        let _ = socket.close(None).await;
    }
    handshakes.sort();
    let (mut socket, _) = tokio_tungstenite::connect_async(&address)
        .await
        .map_err(|e| format!("an all-groups socket: {e}"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut deliveries = Vec::new();
    let mut lost = 0;
    for n in 0..20 {
        let text = format!("to every group's socket {n} {}", uuid_like());
        let sent = Instant::now();
        let reply = c
            .post(format!("{url}/send-message/"))
            .json(&json!({"user_id": WRITER, "group_id": group, "message": text}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !reply.status().is_success() {
            return Err(format!("send: {}", reply.status()));
        }
        let arrived = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(frame)) = socket.next().await {
                if let Message::Text(frame) = frame {
                    if frame.as_str().contains(&text) {
                        return true;
                    }
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if arrived {
            deliveries.push(sent.elapsed());
        } else {
            lost += 1;
        }
    }
    deliveries.sort();
    println!(
        "all-groups socket of a user in {groups} groups: handshake p50 {} p99 {} over 20; a message of one of them sent to arrived p50 {} p99 {} over {} ({lost} lost)",
        ms(percentile(&handshakes, 50.0, Duration::ZERO)),
        ms(percentile(&handshakes, 99.0, Duration::ZERO)),
        ms(percentile(&deliveries, 50.0, Duration::ZERO)),
        ms(percentile(&deliveries, 99.0, Duration::ZERO)),
        deliveries.len(),
    );
    Ok(())
}

/// A tag unique enough to tell this run's messages apart.
fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

async fn list(c: &reqwest::Client, url: &str, user: u64) -> Result<Vec<Value>, String> {
    let reply = c
        .get(format!("{url}/groups?user_id={user}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = reply.status();
    let body: Value = reply.json().await.map_err(|e| e.to_string())?;
    match body.as_array() {
        Some(list) if status.is_success() => Ok(list.clone()),
        _ => Err(format!("GET /groups answered {status}: {body}")),
    }
}

async fn create(c: &reqwest::Client, url: &str, name: &str) -> Result<u64, String> {
    let body: Value = c
        .post(format!("{url}/groups"))
        .json(&json!({"user_id": READER, "name": name}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    body["group_id"]
        .as_u64()
        .ok_or_else(|| format!("POST /groups answered {body}"))
}

/// The reader's group of many unread messages, with the writer in it.
async fn big_group(c: &reqwest::Client, url: &str) -> Result<u64, String> {
    if let Some(found) = list(c, url, READER)
        .await?
        .iter()
        .find(|g| g["name"] == BIG_GROUP)
        .and_then(|g| g["group_id"].as_u64())
    {
        return Ok(found);
    }
    let group = create(c, url, BIG_GROUP).await?;
    let added = c
        .post(format!("{url}/groups/{group}/members?user_id={READER}"))
        .json(&json!({"user_id": WRITER}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if added.status() != 201 {
        return Err(format!("adding the writer answered {}", added.status()));
    }
    // Applied from the log: wait until the writer is in.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !list(c, url, WRITER)
        .await?
        .iter()
        .any(|g| g["group_id"] == group)
    {
        if Instant::now() > deadline {
            return Err("the writer was never added to the group".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(group)
}

async fn fill_groups(c: &reqwest::Client, url: &str, groups: usize) -> Result<(), String> {
    let have = list(c, url, READER).await?.len();
    for i in have..groups {
        create(c, url, &format!("bench group {i}")).await?;
    }
    if have < groups {
        let deadline = Instant::now() + Duration::from_secs(30);
        while list(c, url, READER).await?.len() < groups {
            if Instant::now() > deadline {
                return Err("the new groups never showed".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Sends messages as the writer until the group holds `messages` (counted from its last id
/// and the reader's unread count is not enough: a run records how many it sent, by name).
async fn fill_messages(
    c: &reqwest::Client,
    url: &str,
    group: u64,
    messages: usize,
) -> Result<(), String> {
    // The newest of them, among the group's latest messages (others may follow them).
    let newest = c
        .get(format!("{url}/messages/{group}?limit=100"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json::<Vec<Value>>()
        .await
        .map_err(|e| e.to_string())?;
    let held: usize = newest
        .iter()
        .rev()
        .filter_map(|m| m["message"].as_str())
        .find(|t| t.starts_with("unread "))
        .and_then(|t| t.strip_prefix("unread "))
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(0, |n| n + 1);
    if held >= messages {
        return Ok(());
    }
    let started = Instant::now();
    let sends = futures_util::stream::iter(held..messages).map(|i| {
        let c = c.clone();
        async move {
            let reply = c
                .post(format!("{url}/send-message/"))
                .json(
                    &json!({"user_id": WRITER, "group_id": group, "message": format!("unread {i}"),
                              "client_message_id": format!("bench-unread-{group}-{i}")}),
                )
                .send()
                .await
                .map_err(|e| e.to_string())?;
            match reply.status().as_u16() {
                202 => Ok(()),
                429 => Err(
                    "a send was refused (429): filling a group is over the writer's \
                            send limit; run the stack with RATE_LIMIT_SEND=10000:1 for it"
                        .to_owned(),
                ),
                other => Err(format!("a send answered {other}")),
            }
        }
    });
    let results: Vec<Result<(), String>> = sends.buffered(SENDS_AT_ONCE).collect().await;
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    eprintln!(
        "sent {} messages to group {group} in {:.0} s",
        messages - held,
        started.elapsed().as_secs_f64()
    );
    // Stored before measuring: the last one is in the history.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let page: Vec<Value> = c
            .get(format!("{url}/messages/{group}?limit=100"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let last = format!("unread {}", messages - 1);
        if page.iter().any(|m| m["message"] == last.as_str()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the messages were not all stored within 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The reader types on a socket of the group every 2.1 s; `sockets` anonymous sockets on the
/// group record when each typing frame reaches them.
async fn typing(url: &str, group: u64, sockets: usize) -> Result<(), String> {
    let ws = url.replacen("http://", "ws://", 1);
    let (mut typist, _) =
        tokio_tungstenite::connect_async(format!("{ws}/?group_id={group}&user_id={READER}"))
            .await
            .map_err(|e| format!("the typist's socket: {e}"))?;
    let mut listeners = Vec::new();
    for _ in 0..sockets {
        let (socket, _) = tokio_tungstenite::connect_async(format!("{ws}/?group_id={group}"))
            .await
            .map_err(|e| format!("a listener's socket: {e}"))?;
        listeners.push(socket);
    }
    // Presence and other frames settle first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rounds = 20;
    let mut latencies = Vec::new();
    let mut lost = 0;
    for _ in 0..rounds {
        let sent = Instant::now();
        typist
            .send(Message::Text(
                json!({"action": "typing", "group_id": group})
                    .to_string()
                    .into(),
            ))
            .await
            .map_err(|e| e.to_string())?;
        let arrivals =
            futures_util::future::join_all(listeners.iter_mut().map(|socket| async move {
                tokio::time::timeout(Duration::from_secs(5), async {
                    while let Some(Ok(frame)) = socket.next().await {
                        if let Message::Text(text) = frame {
                            if text.as_str().contains("\"typing\"") {
                                return Some(Instant::now());
                            }
                        }
                    }
                    None
                })
                .await
                .ok()
                .flatten()
            }))
            .await;
        for arrival in arrivals {
            match arrival {
                Some(at) => latencies.push(at - sent),
                None => lost += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(2100).saturating_sub(sent.elapsed())).await;
    }
    latencies.sort();
    println!(
        "typing frame to {sockets} sockets: p50 {} p99 {} max {} over {} frames ({lost} lost)",
        ms(percentile(&latencies, 50.0, Duration::ZERO)),
        ms(percentile(&latencies, 99.0, Duration::ZERO)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len(),
    );
    Ok(())
}
