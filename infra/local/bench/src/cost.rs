//! `chat-bench cost`: what one message costs in the units AWS bills, measured on the running
//! stack. Each phase (sockets connecting, messages sent to N subscribers, edits, deletes,
//! history pages, sockets closing) runs alone in a window of time; the functions' EMF lines
//! of that window (`chat_lambda::metrics`, in the stack's logs) give, per function, the
//! invocations, the billed milliseconds (each invocation rounded up to 1 ms, as Lambda bills),
//! the DynamoDB read and write units, and, for the phase, the WebSocket messages API Gateway
//! bills and the bytes produced to Kafka. Everything is divided by the phase's operations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::emf::{collect_between, Figures, Series};
use chat_core::usage::{
    DYNAMODB_READ_UNITS, DYNAMODB_WRITE_UNITS, KAFKA_BYTES_PRODUCED, WEBSOCKET_MESSAGES,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{client, send};

/// Bob (user 2) may edit and delete; group 1 is his.
const SENDER: u64 = 2;
const GROUP: u64 = 1;
const INVOCATION_DURATION: &str = "invocation_duration";
/// Time for the last invocations of a phase to write their lines.
const SETTLE: Duration = Duration::from_secs(2);

/// What one function used in a phase.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Use {
    pub invocations: f64,
    pub billed_ms: f64,
    pub read_units: f64,
    pub write_units: f64,
}

/// What a phase used: by function, and what is billed per phase rather than per function.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Phase {
    pub functions: BTreeMap<String, Use>,
    pub websocket_messages: f64,
    pub kafka_bytes: f64,
    /// Bytes the functions logged (what CloudWatch Logs ingests).
    pub log_bytes: f64,
    /// The metrics seen (a custom metric each, as CloudWatch bills them).
    pub series: BTreeSet<Series>,
}

impl Phase {
    /// The figures of EMF metrics collected over a phase's window.
    pub fn of(metrics: &BTreeMap<Series, Figures>) -> Self {
        let mut phase = Phase {
            series: metrics.keys().cloned().collect(),
            ..Phase::default()
        };
        for (series, figures) in metrics {
            let entry = || Use::default();
            match series.metric.as_str() {
                INVOCATION_DURATION => {
                    let used = phase
                        .functions
                        .entry(series.function.clone())
                        .or_insert_with(entry);
                    used.invocations += figures.values.len() as f64;
                    used.billed_ms += figures
                        .values
                        .iter()
                        .map(|v| v.ceil().max(1.0))
                        .sum::<f64>();
                }
                DYNAMODB_READ_UNITS | DYNAMODB_WRITE_UNITS => {
                    let used = phase
                        .functions
                        .entry(series.function.clone())
                        .or_insert_with(entry);
                    let units: f64 = figures.values.iter().sum();
                    if series.metric == DYNAMODB_READ_UNITS {
                        used.read_units += units;
                    } else {
                        used.write_units += units;
                    }
                }
                WEBSOCKET_MESSAGES => phase.websocket_messages += figures.sum,
                KAFKA_BYTES_PRODUCED => phase.kafka_bytes += figures.sum,
                _ => {}
            }
        }
        phase
    }

    /// The table of a phase, every figure divided by `operations`.
    pub fn table(&self, title: &str, operations: usize) -> String {
        let per = operations.max(1) as f64;
        let mut out = format!(
            "| {title} | invocations | billed ms | read units | write units |\n|---|---|---|---|---|\n"
        );
        let mut all = Use::default();
        for (function, used) in &self.functions {
            out += &format!(
                "| {function} | {:.3} | {:.2} | {:.2} | {:.2} |\n",
                used.invocations / per,
                used.billed_ms / per,
                used.read_units / per,
                used.write_units / per
            );
            all.invocations += used.invocations;
            all.billed_ms += used.billed_ms;
            all.read_units += used.read_units;
            all.write_units += used.write_units;
        }
        out += &format!(
            "| all functions | {:.3} | {:.2} | {:.2} | {:.2} |\n",
            all.invocations / per,
            all.billed_ms / per,
            all.read_units / per,
            all.write_units / per
        );
        out += &format!(
            "\nWebSocket messages {:.2}, Kafka bytes {:.0}, log bytes {:.0}, per operation ({operations} operations)\n",
            self.websocket_messages / per,
            self.kafka_bytes / per,
            self.log_bytes / per
        );
        out
    }

    /// Every figure divided by `operations`.
    pub fn per(&self, operations: usize) -> Phase {
        let per = operations.max(1) as f64;
        Phase {
            functions: self
                .functions
                .iter()
                .map(|(name, used)| {
                    let used = Use {
                        invocations: used.invocations / per,
                        billed_ms: used.billed_ms / per,
                        read_units: used.read_units / per,
                        write_units: used.write_units / per,
                    };
                    (name.clone(), used)
                })
                .collect(),
            websocket_messages: self.websocket_messages / per,
            kafka_bytes: self.kafka_bytes / per,
            log_bytes: self.log_bytes / per,
            series: self.series.clone(),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The metrics of every `*.log` in `logs` stamped within `from..=to`.
fn window(logs: &Path, from: u64, to: u64) -> Result<Phase, String> {
    let entries = std::fs::read_dir(logs).map_err(|e| {
        format!(
            "cannot read the functions' logs in {} ({e}): run make dev from this checkout, or \
             name its logs with --logs",
            logs.display()
        )
    })?;
    let mut metrics = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            collect_between(&String::from_utf8_lossy(&bytes), from..=to, &mut metrics);
        }
    }
    Ok(Phase::of(&metrics))
}

/// The logs of the stack's own processes (the stand-ins), not of functions.
const STAND_IN_LOGS: [&str; 4] = ["API-Gateway", "cargo-lambda", "event-source", "ready"];

/// Bytes in the functions' logs so far.
fn function_log_bytes(logs: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "log")
                && path
                    .file_stem()
                    .and_then(|stem| stem.to_str())
                    .is_some_and(|stem| !STAND_IN_LOGS.contains(&stem))
        })
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Runs `work` alone in a window and returns what the functions used in it.
async fn measured<T>(
    logs: &Path,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<(T, Phase), String> {
    tokio::time::sleep(SETTLE).await;
    let (from, logged) = (now_ms(), function_log_bytes(logs));
    let value = work.await?;
    tokio::time::sleep(SETTLE).await;
    let mut phase = window(logs, from, now_ms())?;
    phase.log_bytes = function_log_bytes(logs).saturating_sub(logged) as f64;
    Ok((value, phase))
}

/// Sockets on the group, each counting the frames of this run's messages.
struct Sockets {
    writers: Vec<
        futures_util::stream::SplitSink<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
            Message,
        >,
    >,
    frames: Arc<AtomicUsize>,
}

async fn open(url: &str, n: usize, tag: &str) -> Result<Sockets, String> {
    let address = format!("{}/subscribe/{GROUP}", url.replacen("http://", "ws://", 1));
    let frames = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::with_capacity(n);
    for _ in 0..n {
        let (socket, _) = tokio_tungstenite::connect_async(&address)
            .await
            .map_err(|e| format!("{address}: {e} (is make dev running?)"))?;
        let (writer, mut reader) = socket.split();
        let (frames, tag) = (frames.clone(), tag.to_owned());
        tokio::spawn(async move {
            while let Some(Ok(message)) = reader.next().await {
                if let Message::Text(text) = message {
                    if text.as_str().contains(&tag) {
                        frames.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        writers.push(writer);
    }
    Ok(Sockets { writers, frames })
}

/// Until `expected` frames arrived or 60 s passed.
async fn frames_reach(frames: &AtomicUsize, expected: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while frames.load(Ordering::Relaxed) < expected {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {expected} frames arrived within 60 s",
                frames.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Per operation, what each phase used.
#[derive(Debug, Default)]
pub struct Measured {
    /// A message sent, by the count of subscribers it reached.
    pub message: BTreeMap<usize, Phase>,
    pub connect: Phase,
    pub close: Phase,
    pub edit: Phase,
    pub delete: Phase,
    pub history_page: Phase,
}

impl Measured {
    /// Every metric any phase wrote.
    pub fn series(&self) -> BTreeSet<Series> {
        let phases = [
            &self.connect,
            &self.close,
            &self.edit,
            &self.delete,
            &self.history_page,
        ];
        phases
            .into_iter()
            .chain(self.message.values())
            .flat_map(|phase| phase.series.iter().cloned())
            .collect()
    }
}

pub async fn run(
    url: &str,
    logs: &Path,
    subscribers: &[usize],
    messages: usize,
    rate: u64,
) -> Result<Measured, String> {
    let c = client();
    println!(
        "What one operation uses, measured on {url} (the functions' EMF lines in {}); \
         per operation of each phase.\n",
        logs.display()
    );
    let mut measured_all = Measured::default();
    let first = subscribers.iter().copied().min().unwrap_or(1);
    for &n in subscribers {
        let tag = format!("cost-{n}-{}", now_ms());
        let (sockets, connect) = measured(logs, open(url, n, &tag)).await?;
        println!("{}", connect.table(&format!("socket connects ({n})"), n));
        let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        let (ids, sent) = measured(logs, async {
            let mut ids = Vec::with_capacity(messages);
            let mut ticks = tokio::time::interval(interval);
            for i in 0..messages {
                ticks.tick().await;
                ids.push(send(&c, url, SENDER, &format!("{tag} {i}")).await?);
            }
            frames_reach(&sockets.frames, messages * n).await?;
            Ok(ids)
        })
        .await?;
        println!(
            "{}",
            sent.table(
                &format!("message sent to {n} subscribers ({rate}/s)"),
                messages
            )
        );
        measured_all.message.insert(n, sent.per(messages));
        if n == first {
            operations(&c, url, logs, &ids, n, &mut measured_all).await?;
        }
        let Sockets { writers, .. } = sockets;
        let ((), close) = measured(logs, async {
            for mut writer in writers {
                let _ = writer.send(Message::Close(None)).await;
            }
            Ok(())
        })
        .await?;
        println!("{}", close.table(&format!("socket closes ({n})"), n));
        if n == first {
            measured_all.connect = connect.per(n);
            measured_all.close = close.per(n);
        }
    }
    Ok(measured_all)
}

/// Sends `request`; an error naming `what` unless it answered 2xx.
async fn succeeds(request: reqwest::RequestBuilder, what: &str) -> Result<(), String> {
    let reply = request.send().await.map_err(|e| format!("{what}: {e}"))?;
    if !reply.status().is_success() {
        return Err(format!("{what}: {}", reply.status()));
    }
    Ok(())
}

/// Edits, deletes and history pages, with `n` sockets listening.
async fn operations(
    c: &reqwest::Client,
    url: &str,
    logs: &Path,
    ids: &[u64],
    n: usize,
    into: &mut Measured,
) -> Result<(), String> {
    // Within the default per-user edit and delete budgets (10 at once).
    let count = ids.len().min(10);
    let ((), edits) = measured(logs, async {
        for (i, id) in ids.iter().take(count).enumerate() {
            let edit = format!("{url}/edit-message/{id}?user_id={SENDER}&new_text=edited+{i}");
            succeeds(c.put(edit), &format!("edit {id}")).await?;
        }
        Ok(())
    })
    .await?;
    println!("{}", edits.table(&format!("edit ({n} subscribers)"), count));
    into.edit = edits.per(count);
    let ((), deletes) = measured(logs, async {
        for id in ids.iter().take(count) {
            let delete = format!("{url}/delete-message/{id}?user_id={SENDER}");
            succeeds(c.delete(delete), &format!("delete {id}")).await?;
        }
        Ok(())
    })
    .await?;
    println!(
        "{}",
        deletes.table(&format!("delete ({n} subscribers)"), count)
    );
    into.delete = deletes.per(count);
    let ((), pages) = measured(logs, async {
        for _ in 0..count {
            succeeds(c.get(format!("{url}/messages/{GROUP}?limit=50")), "history").await?;
        }
        Ok(())
    })
    .await?;
    println!("{}", pages.table("history page of 50", count));
    into.history_page = pages.per(count);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(function: &str, metric: &str) -> Series {
        Series {
            function: function.into(),
            metric: metric.into(),
            dimensions: String::new(),
        }
    }

    fn values(values: &[f64]) -> Figures {
        Figures {
            unit: None,
            sum: 0.0,
            values: values.to_vec(),
        }
    }

    fn counter(sum: f64) -> Figures {
        Figures {
            sum,
            ..Figures::default()
        }
    }

    #[test]
    fn invocations_are_billed_per_started_millisecond_and_units_add_up() {
        let metrics = BTreeMap::from([
            (
                series("send-message", INVOCATION_DURATION),
                values(&[0.2, 1.0, 2.5]),
            ),
            (
                series("send-message", DYNAMODB_READ_UNITS),
                values(&[0.5, 1.0]),
            ),
            (series("send-message", DYNAMODB_WRITE_UNITS), values(&[1.0])),
            (series("kafka-consumer", WEBSOCKET_MESSAGES), counter(40.0)),
            (series("send-message", KAFKA_BYTES_PRODUCED), counter(600.0)),
        ]);
        let phase = Phase::of(&metrics);
        assert_eq!(
            phase.functions["send-message"],
            Use {
                invocations: 3.0,
                billed_ms: 1.0 + 1.0 + 3.0,
                read_units: 1.5,
                write_units: 1.0
            }
        );
        assert_eq!((phase.websocket_messages, phase.kafka_bytes), (40.0, 600.0));
        let table = phase.table("message", 2);
        assert!(
            table.contains("| send-message | 1.500 | 2.50 | 0.75 | 0.50 |"),
            "{table}"
        );
        assert!(
            table.contains("WebSocket messages 20.00, Kafka bytes 300"),
            "{table}"
        );
    }
}
