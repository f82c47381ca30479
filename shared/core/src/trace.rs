//! Where a message's time goes, hop by hop, for one request that asks.
//!
//! A `POST /send-message/` with an `X-Chat-Trace` header starts a trace: the handler stamps
//! when it started and when Kafka acknowledged the record (both in its reply's `X-Chat-Trace`
//! header), and the record carries a `chat-trace` header with the first stamp. The local event
//! source appends when it fetched the record and when it invoked the stream processor (AWS's
//! does not), the stream processor when its handler started, when the message was stored and
//! when its frame went out, and the frame carries them all as `"trace"`. Every stamp is
//! microseconds since the Unix epoch: the hops are only comparable on one host (the local
//! stack) or with synchronized clocks. Untraced messages carry nothing and cost nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// The request header that asks for a trace, and the reply header that answers it.
pub const REQUEST_HEADER: &str = "x-chat-trace";
/// The Kafka record header that carries the stamps along the pipeline.
pub const RECORD_HEADER: &str = "chat-trace";
/// The most stamps one trace holds: a header is never allowed to grow without bound.
pub const MAX_STAMPS: usize = 16;

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Named stamps in the order they were made: `received=1700000000000000;acked=...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace(Vec<(String, i64)>);

impl Trace {
    /// A trace whose first stamp is `name`, now.
    pub fn start(name: &str) -> Self {
        let mut trace = Self::default();
        trace.stamp(name);
        trace
    }

    /// Reads a header's value; pairs that do not parse are left out (a trace is diagnostics:
    /// it never fails the record that carries it).
    pub fn parse(text: &str) -> Self {
        Self(
            text.split(';')
                .filter_map(|pair| {
                    let (name, at) = pair.split_once('=')?;
                    let name = name.trim();
                    let valid = !name.is_empty()
                        && name.len() <= 32
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    valid.then_some(())?;
                    Some((name.to_owned(), at.trim().parse().ok()?))
                })
                .take(MAX_STAMPS)
                .collect(),
        )
    }

    /// Adds `name`, now (ignored once the trace holds [`MAX_STAMPS`]).
    pub fn stamp(&mut self, name: &str) {
        self.stamp_at(name, now_us());
    }

    pub fn stamp_at(&mut self, name: &str, at_us: i64) {
        if self.0.len() < MAX_STAMPS {
            self.0.push((name.to_owned(), at_us));
        }
    }

    pub fn get(&self, name: &str) -> Option<i64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, at)| *at)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The header form, `name=micros;name=micros`.
    pub fn to_header(&self) -> String {
        self.0
            .iter()
            .map(|(name, at)| format!("{name}={at}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The frame form: `{"received": micros, ...}`.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(name, at)| (name.clone(), Value::from(*at)))
                .collect::<Map<_, _>>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_reads_back_what_it_wrote_and_keeps_its_order() {
        let mut trace = Trace::start("received");
        trace.stamp_at("acked", 42);
        let read = Trace::parse(&trace.to_header());
        assert_eq!(read, trace);
        assert_eq!(read.get("acked"), Some(42));
        assert!(read
            .get("received")
            .is_some_and(|at| at > 1_600_000_000_000_000));
        let stamps = read.to_json();
        assert_eq!(stamps["acked"], 42);
        assert_eq!(stamps["received"].as_i64(), read.get("received"));
    }

    #[test]
    fn garbage_is_left_out_and_a_trace_cannot_grow_without_bound() {
        let read = Trace::parse("a=1;b=x;=3;c d=4;e=5;\"f\"=6;ok_2=7;;junk");
        assert_eq!(read.to_header(), "a=1;e=5;ok_2=7");
        let long = (0..100).map(|i| format!("s{i}={i}")).collect::<Vec<_>>();
        let mut trace = Trace::parse(&long.join(";"));
        assert_eq!(trace.0.len(), MAX_STAMPS);
        trace.stamp("more");
        assert_eq!(trace.0.len(), MAX_STAMPS);
        assert!(Trace::parse("").is_empty());
    }
}
