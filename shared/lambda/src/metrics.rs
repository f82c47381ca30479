//! CloudWatch metrics in Embedded Metric Format (EMF): functions record through the `metrics`
//! facade, and after each invocation one JSON line per set of dimensions goes to stdout, which
//! CloudWatch Logs turns into metrics (no API call, no agent, nothing on the hot path). The
//! namespace is `METRICS_NAMESPACE` (default `Chat`); every line has the function's name as
//! its `function` dimension. Locally the lines land in the functions' logs, where
//! `chatctl stats` reads them.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_cloudwatch_embedded::Collector;

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// The metrics' names, as CloudWatch shows them.
pub mod name {
    /// HTTP and WebSocket API requests, by `route` and `status`.
    pub const REQUESTS: &str = "requests";
    /// Milliseconds a request spent in its function, by `route`.
    pub const REQUEST_DURATION: &str = "request_duration";
    /// Stream processor: records applied to the store.
    pub const RECORDS_APPLIED: &str = "records_applied";
    /// Stream processor: records sent to the dead-letter topic.
    pub const RECORDS_DEAD_LETTERED: &str = "records_dead_lettered";
    /// Stream processor: frames delivered.
    pub const PUSHES_SENT: &str = "pushes_sent";
    /// Stream processor: connections found closed (410).
    pub const PUSHES_GONE: &str = "pushes_gone";
    /// Stream processor: connections cut off after pushes that kept failing.
    pub const PUSHES_FAILED: &str = "pushes_failed";
    /// Stream processor: milliseconds to apply and push one batch.
    pub const BATCH_DURATION: &str = "batch_duration";
    /// Stream processor: milliseconds from the Kafka timestamp of a batch's oldest record to
    /// the end of its processing.
    pub const LAG: &str = "lag";
    /// Milliseconds of one invocation, as Lambda bills it (rounded up to the millisecond), of
    /// every function.
    pub const INVOCATION_DURATION: &str = "invocation_duration";
    pub use chat_core::usage::{
        DYNAMODB_READ_UNITS, DYNAMODB_WRITE_UNITS, KAFKA_BYTES_PRODUCED, WEBSOCKET_MESSAGES,
    };
}

/// Installs the recorder, once per process; later calls do nothing.
pub fn init() {
    COLLECTOR.get_or_init(|| {
        let namespace = std::env::var("METRICS_NAMESPACE")
            .ok()
            .or_else(|| chat_core::config::default_of("METRICS_NAMESPACE").map(str::to_owned))
            .unwrap_or_default();
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(namespace)
            .with_dimension("function", function)
            .init()
            // Only fails when another recorder is installed, which nothing of ours does.
            .unwrap_or_else(|e| panic!("cannot install the metrics recorder: {e}"));
        describe();
        collector
    });
}

fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(name::REQUESTS, Unit::Count, "requests");
    metrics::describe_histogram!(name::REQUEST_DURATION, Unit::Milliseconds, "request time");
    metrics::describe_counter!(name::RECORDS_APPLIED, Unit::Count, "records applied");
    metrics::describe_counter!(name::RECORDS_DEAD_LETTERED, Unit::Count, "dead-lettered");
    metrics::describe_counter!(name::PUSHES_SENT, Unit::Count, "frames delivered");
    metrics::describe_counter!(name::PUSHES_GONE, Unit::Count, "connections gone");
    metrics::describe_counter!(name::PUSHES_FAILED, Unit::Count, "connections cut off");
    metrics::describe_histogram!(name::BATCH_DURATION, Unit::Milliseconds, "batch time");
    metrics::describe_histogram!(name::LAG, Unit::Milliseconds, "oldest record's age");
    metrics::describe_histogram!(
        name::INVOCATION_DURATION,
        Unit::Milliseconds,
        "invocation time"
    );
    metrics::describe_histogram!(name::DYNAMODB_READ_UNITS, Unit::Count, "read units a call");
    metrics::describe_histogram!(
        name::DYNAMODB_WRITE_UNITS,
        Unit::Count,
        "write units a call"
    );
    metrics::describe_counter!(name::KAFKA_BYTES_PRODUCED, Unit::Bytes, "bytes produced");
    metrics::describe_counter!(name::WEBSOCKET_MESSAGES, Unit::Count, "messages billed");
}

/// The end of an invocation of any function: its duration, then every line recorded since the
/// last flush.
pub fn invocation_done(took: Duration) {
    metrics::histogram!(name::INVOCATION_DURATION).record(took.as_secs_f64() * 1000.0);
    flush();
}

/// One request of an API route: its structured log line (route, status, duration) and its
/// metrics.
pub fn request_done(route: &str, status: u16, took: Duration) {
    let duration_ms = took.as_secs_f64() * 1000.0;
    tracing::info!(route, status, duration_ms, "request");
    metrics::counter!(name::REQUESTS, "route" => route.to_owned(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(name::REQUEST_DURATION, "route" => route.to_owned()).record(duration_ms);
}

/// What one batch of the stream processor did.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct BatchFigures {
    pub applied: u64,
    pub dead_lettered: u64,
    pub pushes_sent: u64,
    pub pushes_gone: u64,
    pub pushes_failed: u64,
    pub duration: Duration,
    /// Now minus the Kafka timestamp of the batch's oldest record, when it had one.
    pub lag: Option<Duration>,
}

pub fn batch_done(figures: &BatchFigures) {
    metrics::counter!(name::RECORDS_APPLIED).increment(figures.applied);
    metrics::counter!(name::RECORDS_DEAD_LETTERED).increment(figures.dead_lettered);
    metrics::counter!(name::PUSHES_SENT).increment(figures.pushes_sent);
    metrics::counter!(name::PUSHES_GONE).increment(figures.pushes_gone);
    metrics::counter!(name::PUSHES_FAILED).increment(figures.pushes_failed);
    metrics::histogram!(name::BATCH_DURATION).record(figures.duration.as_secs_f64() * 1000.0);
    if let Some(lag) = figures.lag {
        metrics::histogram!(name::LAG).record(lag.as_secs_f64() * 1000.0);
    }
}

/// Writes what was recorded since the last flush, one EMF line per set of dimensions. Called
/// at the end of every invocation: Lambda may freeze the process right after.
pub fn flush() {
    if let Err(e) = flush_to(std::io::stdout().lock()) {
        tracing::warn!(error = %e, "cannot write metrics");
    }
}

pub fn flush_to(writer: impl Write) -> std::io::Result<()> {
    match COLLECTOR.get() {
        Some(collector) => collector.flush(writer),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn lines() -> Vec<Value> {
        let mut out = Vec::new();
        flush_to(&mut out).expect("flush");
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON document per line"))
            .collect()
    }

    // One test: the recorder is global to the process.
    #[test]
    fn requests_become_emf_documents_cloudwatch_can_read() {
        init();
        init(); // a second call changes nothing
        request_done("POST /send-message/", 202, Duration::from_millis(7));
        request_done("POST /send-message/", 202, Duration::from_millis(9));
        request_done("POST /send-message/", 400, Duration::from_millis(1));
        let documents = lines();
        let count = |status: &str| {
            documents
                .iter()
                .find(|d| d["status"] == status)
                .map(|d| d[name::REQUESTS].clone())
        };
        assert_eq!(count("202"), Some(Value::from(2)));
        assert_eq!(count("400"), Some(Value::from(1)));
        let durations = documents
            .iter()
            .find(|d| d.get(name::REQUEST_DURATION).is_some())
            .expect("a duration document");
        assert_eq!(
            durations[name::REQUEST_DURATION].as_array().map(Vec::len),
            Some(3)
        );
        for document in &documents {
            let aws = &document["_aws"];
            assert!(aws["Timestamp"].as_u64().is_some(), "{document}");
            let directive = &aws["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "Chat");
            // Every dimension named is a member of the document, as EMF requires.
            for dimension in directive["Dimensions"][0].as_array().expect("dimensions") {
                let dimension = dimension.as_str().expect("a name");
                assert!(document[dimension].is_string(), "{dimension} in {document}");
            }
            for metric in directive["Metrics"].as_array().expect("metrics") {
                assert!(
                    document[metric["Name"].as_str().expect("name")].is_number()
                        || document[metric["Name"].as_str().expect("name")].is_array()
                );
            }
        }
        // Flushed means gone: the next invocation's lines carry only its own figures.
        assert!(lines().is_empty());

        batch_done(&BatchFigures {
            applied: 5,
            dead_lettered: 1,
            pushes_sent: 10,
            pushes_gone: 2,
            pushes_failed: 0,
            duration: Duration::from_millis(12),
            lag: Some(Duration::from_millis(40)),
        });
        let documents = lines();
        assert_eq!(documents.len(), 1, "one set of dimensions: {documents:?}");
        let batch = &documents[0];
        assert_eq!(batch[name::RECORDS_APPLIED], 5);
        assert_eq!(batch[name::RECORDS_DEAD_LETTERED], 1);
        assert_eq!(batch[name::PUSHES_SENT], 10);
        assert_eq!(batch[name::PUSHES_GONE], 2);
        assert_eq!(batch[name::LAG], serde_json::json!([40.0]));
        assert_eq!(batch[name::BATCH_DURATION], serde_json::json!([12.0]));
        let units: Vec<(&str, &str)> = batch["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| Some((m["Name"].as_str()?, m["Unit"].as_str()?)))
            .collect();
        assert!(units.contains(&(name::LAG, "Milliseconds")), "{units:?}");
    }
}
