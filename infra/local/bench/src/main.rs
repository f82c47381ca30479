//! `chat-bench`: measures the running local stack (`make dev`) from outside, over HTTP and
//! WebSocket only (`cost` also reads the stack's logs). Every run is bounded in requests and
//! time. `chat-bench --help` lists the modes: `api` (latency per endpoint), `realtime`
//! (POST-to-frame latency at a fixed rate), `sweep` (doubling rates until frames are lost or
//! p99 passes 1 s), `hops` (where the time of a message goes, hop by hop, from traced sends),
//! `groups` (GET /groups with many groups and many unread messages, typing to many sockets),
//! `cost` (what an operation uses of what AWS bills).

mod bill;
mod cost;
mod groups;
mod hops;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Measures the running local stack (`make dev`) from outside, over HTTP and WebSocket only.
#[derive(Parser)]
#[command(name = "chat-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Base URL of the chat API.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8000")]
    url: String,
}

#[derive(Subcommand)]
enum Command {
    /// p50/p99 latency of each endpoint over sequential requests.
    Api {
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        requests: u64,
    },
    /// POSTs at a fixed rate while a socket on the group listens; POST-to-frame latency and
    /// lost frames.
    Realtime {
        /// Messages a second.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=5_000))]
        rate: u64,
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// Traced sends at a fixed rate: the median and p99 of each hop from POST to frame.
    Hops {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=5_000))]
        rate: u64,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Sockets on the group; every socket's frames count (as `make bench`'s cases).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000))]
        subscribers: u64,
    },
    /// GET /groups for a user in many groups, one with many unread messages; a typing frame's
    /// latency to many sockets (fills what an earlier run did not leave).
    Groups {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1_000))]
        groups: u64,
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        messages: u64,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000))]
        sockets: u64,
    },
    /// What one message, edit, delete, history page and socket uses of what AWS bills
    /// (invocations, billed milliseconds, DynamoDB units, WebSocket messages, Kafka bytes),
    /// from the functions' EMF lines in the stack's logs.
    Cost {
        /// The folder of the functions' logs (make dev's).
        #[arg(long, default_value = ".data/dev/api")]
        logs: std::path::PathBuf,
        /// The subscriber counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2,20,200")]
        subscribers: Vec<usize>,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(20..=10_000))]
        messages: u64,
        /// Messages a second.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000))]
        rate: u64,
    },
    /// Realtime at doubling rates from 50/s until frames are lost or p99 passes 1 s.
    Sweep {
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let url = cli.url.trim_end_matches('/');
    let result = match cli.command {
        Command::Api { requests } => api(url, requests as usize).await,
        Command::Realtime { rate, seconds } => realtime(url, rate, seconds).await.map(|_| ()),
        Command::Sweep { seconds } => sweep(url, seconds).await,
        Command::Hops {
            rate,
            seconds,
            subscribers,
        } => hops::run(url, rate, seconds, subscribers as usize).await,
        Command::Cost {
            logs,
            subscribers,
            messages,
            rate,
        } => match cost::run(url, &logs, &subscribers, messages as usize, rate).await {
            Ok(measured) => bill::page_bytes()
                .map(|page_bytes| print!("{}", bill::report(&measured, page_bytes))),
            Err(e) => Err(e),
        },
        Command::Groups {
            groups,
            messages,
            sockets,
        } => groups::run(url, groups as usize, messages as usize, sockets as usize).await,
    };
    if let Err(e) = result {
        eprintln!("chat-bench: {e}");
        std::process::exit(1);
    }
}

/// The value at percentile `p` (0-100) of sorted values (nearest rank); `empty` when there
/// are none.
fn percentile<T: Copy>(sorted: &[T], p: f64, empty: T) -> T {
    if sorted.is_empty() {
        return empty;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_default()
}

async fn send(client: &reqwest::Client, url: &str, user: u64, text: &str) -> Result<u64, String> {
    let reply = client
        .post(format!("{url}/send-message/"))
        .json(&json!({"user_id": user, "message": text}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = reply.status();
    let body: Value = reply.json().await.map_err(|e| e.to_string())?;
    if status != 202 {
        return Err(format!("send answered {status}: {body}"));
    }
    body["message_id"]
        .as_u64()
        .ok_or_else(|| format!("no message_id in {body}"))
}

/// Waits until every id is in the group's history (the stream processor has stored it).
async fn await_stored(
    client: &reqwest::Client,
    url: &str,
    group: u64,
    ids: &[u64],
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let smallest = ids.iter().min().copied().unwrap_or(1);
    loop {
        let page: Vec<Value> = client
            .get(format!(
                "{url}/messages/{group}?after={}&limit=1000",
                smallest - 1
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let stored: std::collections::HashSet<u64> =
            page.iter().filter_map(|m| m["id"].as_u64()).collect();
        if ids.iter().all(|id| stored.contains(id)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                "messages were not stored within 60 s: is the event source running?".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn timed(
    n: usize,
    mut request: impl FnMut(usize) -> reqwest::RequestBuilder,
) -> Result<Vec<Duration>, String> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let reply = request(i).send().await.map_err(|e| e.to_string())?;
        let status = reply.status();
        let _ = reply.bytes().await;
        latencies.push(started.elapsed());
        if !status.is_success() {
            return Err(format!("request {i} answered {status}"));
        }
    }
    latencies.sort();
    Ok(latencies)
}

async fn api(url: &str, n: usize) -> Result<(), String> {
    let c = client();
    // Bob (user 2, group 1) may edit and delete: his messages are the targets.
    let mut targets = Vec::with_capacity(n + 1);
    for i in 0..=n {
        targets.push(send(&c, url, 2, &format!("bench target {i}")).await?);
    }
    await_stored(&c, url, 1, &targets).await?;
    // Warm every function's instances first.
    timed(20, |_| c.get(format!("{url}/users/"))).await?;
    let mut rows = Vec::new();
    rows.push((
        "POST /send-message/",
        timed(n, |i| {
            c.post(format!("{url}/send-message/"))
                .json(&json!({"user_id": 1, "message": format!("bench {i}")}))
        })
        .await?,
    ));
    rows.push((
        "GET /messages/1?limit=100",
        timed(n, |_| c.get(format!("{url}/messages/1?limit=100"))).await?,
    ));
    let edited = targets[n];
    rows.push((
        "PUT /edit-message/{id}",
        timed(n, |i| {
            c.put(format!(
                "{url}/edit-message/{edited}?user_id=2&new_text=edit+{i}"
            ))
        })
        .await?,
    ));
    rows.push((
        "DELETE /delete-message/{id}",
        timed(n, |i| {
            c.delete(format!("{url}/delete-message/{}?user_id=2", targets[i]))
        })
        .await?,
    ));
    rows.push((
        "GET /users/",
        timed(n, |_| c.get(format!("{url}/users/"))).await?,
    ));
    println!(
        "{:<30} {:>9} {:>9} {:>9}   ({n} sequential requests each)",
        "endpoint", "p50", "p99", "max"
    );
    for (name, l) in rows {
        println!(
            "{name:<30} {:>9} {:>9} {:>9}",
            ms(percentile(&l, 50.0, Duration::ZERO)),
            ms(percentile(&l, 99.0, Duration::ZERO)),
            ms(l[l.len() - 1])
        );
    }
    Ok(())
}

struct RunResult {
    sent: usize,
    lost: usize,
    p50: Duration,
    p99: Duration,
}

/// POSTs `rate` messages a second for `seconds` to group 2 (as user 4) while a socket on the
/// group records when each frame arrives.
async fn realtime(url: &str, rate: u64, seconds: u64) -> Result<RunResult, String> {
    let ws = format!("{}/subscribe/2", url.replacen("http://", "ws://", 1));
    let (socket, _) = tokio_tungstenite::connect_async(&ws)
        .await
        .map_err(|e| format!("{ws}: {e}"))?;
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let listener = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let (_, mut read) = socket.split();
            while let Some(Ok(frame)) = read.next().await {
                if let Message::Text(text) = frame {
                    let now = Instant::now();
                    if let Ok(v) = serde_json::from_str::<Value>(text.as_str()) {
                        if let Some(m) = v["message"].as_str() {
                            lock(&arrivals).insert(m.to_owned(), now);
                        }
                    }
                }
            }
        })
    };
    let run = format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()) << 32
    );
    let c = client();
    let total = (rate * seconds) as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let (c, url, text) = (c.clone(), url.to_owned(), format!("rt {run} {i}"));
        sends.spawn(async move {
            let at = Instant::now();
            send(&c, &url, 4, &text).await.map(|_| (text, at))
        });
    }
    let mut posted = Vec::with_capacity(total);
    while let Some(done) = sends.join_next().await {
        posted.push(done.map_err(|e| e.to_string())??);
    }
    let send_secs = started.elapsed().as_secs_f64();
    // Frames still in flight get up to 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = lock(&arrivals).len();
        if got >= posted.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listener.abort();
    let arrivals = lock(&arrivals);
    let mut latencies: Vec<Duration> = posted
        .iter()
        .filter_map(|(text, at)| {
            arrivals
                .get(text)
                .map(|arrived| arrived.saturating_duration_since(*at))
        })
        .collect();
    latencies.sort();
    let result = RunResult {
        sent: posted.len(),
        lost: posted.len() - latencies.len(),
        p50: percentile(&latencies, 50.0, Duration::ZERO),
        p99: percentile(&latencies, 99.0, Duration::ZERO),
    };
    println!(
        "rate {rate}/s for {seconds} s: {} sent in {send_secs:.1} s ({:.0}/s achieved), {} lost; POST-to-frame p50 {} p99 {} max {}",
        result.sent,
        result.sent as f64 / send_secs,
        result.lost,
        ms(result.p50),
        ms(result.p99),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    Ok(result)
}

async fn sweep(url: &str, seconds: u64) -> Result<(), String> {
    let mut rate = 50;
    let mut best = None;
    while rate <= 3200 {
        let r = realtime(url, rate, seconds).await?;
        if r.lost > 0 || r.p99 > Duration::from_secs(1) {
            break;
        }
        best = Some(rate);
        rate *= 2;
    }
    match best {
        Some(rate) => println!("highest rate without loss and with p99 under 1 s: {rate}/s"),
        None => println!("even 50/s lost frames or exceeded 1 s p99"),
    }
    Ok(())
}

/// A mutex's guard; a listener that panicked holding it left nothing half-written that matters.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
