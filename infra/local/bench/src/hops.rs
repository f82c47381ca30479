//! `chat-bench hops`: where a message's time goes, hop by hop. Each send asks for a trace
//! (`X-Chat-Trace`); the reply says when the handler started and when Kafka acknowledged,
//! and the frame on the socket carries the stamps of the event source and the stream
//! processor (see `chat_core::trace`). All stamps are this host's clock, in microseconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_core::trace::{now_us, Trace, REQUEST_HEADER};

use crate::lock;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The hops, each from one stamp to the next; `posted` and `arrived` are the client's.
const HOPS: [(&str, &str, &str); 10] = [
    ("client -> send-message handler", "posted", "received"),
    ("handler: send limit", "received", "admitted"),
    ("handler: sender, membership", "admitted", "checked"),
    ("handler: publish until acked", "checked", "acked"),
    ("ack -> fetched by event source", "acked", "fetched"),
    ("fetched -> invocation sent", "fetched", "invoking"),
    ("invocation -> handler started", "invoking", "started"),
    ("started -> stored (DynamoDB)", "started", "stored"),
    ("stored -> fan-out starts", "stored", "pushing"),
    ("fan-out -> frame at client", "pushing", "arrived"),
];

/// One traced message: every stamp it collected on the way.
type Stamps = HashMap<String, i64>;

/// POSTs `rate` traced messages a second for `seconds` to group 2 (as user 4) with
/// `subscribers` sockets on the group, then prints the median and p99 of each hop and of the
/// whole way, over every frame on every socket.
pub async fn run(url: &str, rate: u64, seconds: u64, subscribers: usize) -> Result<(), String> {
    let ws = format!("{}/subscribe/2", url.replacen("http://", "ws://", 1));
    let mut listeners = Vec::with_capacity(subscribers);
    let mut frames: Vec<Arc<Mutex<HashMap<String, Stamps>>>> = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (socket, _) = tokio_tungstenite::connect_async(&ws)
            .await
            .map_err(|e| format!("{ws}: {e} (is make dev running?)"))?;
        let received: Arc<Mutex<HashMap<String, Stamps>>> = Arc::default();
        listeners.push(tokio::spawn(listen(socket, received.clone())));
        frames.push(received);
    }
    let client = crate::client();
    let run = format!("{:x}", now_us());
    let total = (rate * seconds) as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let (client, url, text) = (client.clone(), url.to_owned(), format!("hop {run} {i}"));
        sends.spawn(async move { send_traced(&client, &url, &text).await.map(|s| (text, s)) });
    }
    let mut sent: Vec<(String, Stamps)> = Vec::with_capacity(total);
    while let Some(done) = sends.join_next().await {
        sent.push(done.map_err(|e| e.to_string())??);
    }
    let arrived = || -> usize { frames.iter().map(|f| lock(f).len()).sum() };
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrived() < sent.len() * subscribers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for listener in listeners {
        listener.abort();
    }
    let mut traced: Vec<Stamps> = Vec::with_capacity(total * subscribers);
    for received in &frames {
        let received = lock(received);
        traced.extend(sent.iter().filter_map(|(text, stamps)| {
            let mut stamps = stamps.clone();
            stamps.extend(received.get(text)?.clone());
            Some(stamps)
        }));
    }
    let expected = total * subscribers;
    print_budget(rate, seconds, subscribers, expected, &traced);
    if traced.len() < expected {
        return Err(format!(
            "{} of {expected} frames never arrived",
            expected - traced.len()
        ));
    }
    Ok(())
}

/// Collects the stamps of each traced frame on one socket, by the message's text.
async fn listen<S>(socket: S, frames: Arc<Mutex<HashMap<String, Stamps>>>)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut read = socket;
    while let Some(Ok(Message::Text(text))) = read.next().await {
        let arrived = now_us();
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let (Some(message), Some(trace)) = (frame["message"].as_str(), frame["trace"].as_object())
        else {
            continue;
        };
        let mut stamps: Stamps = trace
            .iter()
            .filter_map(|(name, at)| Some((name.clone(), at.as_i64()?)))
            .collect();
        stamps.insert("arrived".into(), arrived);
        lock(&frames).insert(message.to_owned(), stamps);
    }
}

/// One traced POST: the client's stamps and the handler's (from the reply header).
async fn send_traced(client: &reqwest::Client, url: &str, text: &str) -> Result<Stamps, String> {
    let posted = now_us();
    let reply = client
        .post(format!("{url}/send-message/"))
        .header(REQUEST_HEADER, "1")
        .json(&json!({"user_id": 4, "message": text}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let replied = now_us();
    let status = reply.status();
    let header = reply
        .headers()
        .get(REQUEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(Trace::parse);
    let body = reply.text().await.map_err(|e| e.to_string())?;
    if status != 202 {
        return Err(format!("send answered {status}: {body}"));
    }
    let header = header.ok_or("the reply has no X-Chat-Trace header: is send-message current?")?;
    let mut stamps = Stamps::from([("posted".into(), posted), ("replied".into(), replied)]);
    for name in ["received", "admitted", "checked", "acked"] {
        if let Some(at) = header.get(name) {
            stamps.insert(name.into(), at);
        }
    }
    Ok(stamps)
}

fn print_budget(rate: u64, seconds: u64, subscribers: usize, total: usize, traced: &[Stamps]) {
    println!(
        "hops at {rate} msg/s for {seconds} s, {subscribers} socket(s): {} of {total} frames \
         traced (ms; a hop can be negative when the next stage starts before the previous one \
         hears back)",
        traced.len()
    );
    println!("{:<34} {:>8} {:>8} {:>8}", "hop", "p50", "p99", "n");
    let mut rows: Vec<(&str, Vec<f64>)> = HOPS
        .iter()
        .map(|(name, from, to)| (*name, spans(traced, from, to)))
        .collect();
    rows.push(("total: POST -> frame", spans(traced, "posted", "arrived")));
    rows.push((
        "(ack -> reply at client)",
        spans(traced, "acked", "replied"),
    ));
    for (name, mut values) in rows {
        values.sort_by(f64::total_cmp);
        println!(
            "{name:<34} {:>8.1} {:>8.1} {:>8}",
            crate::percentile(&values, 50.0, f64::NAN),
            crate::percentile(&values, 99.0, f64::NAN),
            values.len()
        );
    }
}

/// Milliseconds from stamp `from` to stamp `to`, for every message that has both.
fn spans(traced: &[Stamps], from: &str, to: &str) -> Vec<f64> {
    traced
        .iter()
        .filter_map(|s| Some((s.get(to)? - s.get(from)?) as f64 / 1000.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_use_only_messages_with_both_stamps_and_percentiles_pick_ranks() {
        let a = Stamps::from([("x".into(), 1_000), ("y".into(), 3_500)]);
        let b = Stamps::from([("x".into(), 2_000)]);
        assert_eq!(spans(&[a, b], "x", "y"), vec![2.5]);
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(crate::percentile(&sorted, 50.0, f64::NAN), 50.0);
        assert_eq!(crate::percentile(&sorted, 99.0, f64::NAN), 99.0);
        assert!(crate::percentile(&[], 50.0, f64::NAN).is_nan());
    }
}
