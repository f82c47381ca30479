//! Reading CloudWatch Embedded Metric Format lines (what the functions write, see
//! `chat_lambda::metrics`) back into figures, as CloudWatch would: counters summed, histograms'
//! values kept. For the local tools (`chatctl stats`, `chat-bench cost`).

use std::collections::BTreeMap;

use serde_json::Value;

/// One metric of one function with one set of dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub function: String,
    pub metric: String,
    /// The other dimensions, `name=value`, in the line's order.
    pub dimensions: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    pub unit: Option<String>,
    /// A counter's total.
    pub sum: f64,
    /// A histogram's values.
    pub values: Vec<f64>,
}

/// Every metric of the EMF lines in `text` stamped at or after `since_ms` (Unix milliseconds).
pub fn collect(text: &str, since_ms: u64, into: &mut BTreeMap<Series, Figures>) {
    collect_between(text, since_ms..=u64::MAX, into);
}

/// Every metric of the EMF lines in `text` stamped within `window` (Unix milliseconds).
pub fn collect_between(
    text: &str,
    window: std::ops::RangeInclusive<u64>,
    into: &mut BTreeMap<Series, Figures>,
) {
    for line in text.lines() {
        // EMF documents are whole JSON lines; a log shipper may prefix them.
        let Some(start) = line.find(r#"{"_aws""#) else {
            continue;
        };
        let Ok(document) = serde_json::from_str::<Value>(&line[start..]) else {
            continue;
        };
        let aws = &document["_aws"];
        if !window.contains(&aws["Timestamp"].as_u64().unwrap_or(0)) {
            continue;
        }
        for directive in aws["CloudWatchMetrics"].as_array().into_iter().flatten() {
            let names: Vec<&str> = directive["Dimensions"]
                .get(0)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let text_of = |name: &str| match &document[name] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let function = names
                .iter()
                .find(|n| **n == "function")
                .map(|n| text_of(n))
                .unwrap_or_default();
            let dimensions = names
                .iter()
                .filter(|n| **n != "function")
                .map(|n| format!("{n}={}", text_of(n)))
                .collect::<Vec<_>>()
                .join(" ");
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                let Some(name) = metric["Name"].as_str() else {
                    continue;
                };
                let figures = into
                    .entry(Series {
                        function: function.clone(),
                        metric: name.to_owned(),
                        dimensions: dimensions.clone(),
                    })
                    .or_default();
                figures.unit = metric["Unit"].as_str().map(str::to_owned);
                match &document[name] {
                    Value::Array(values) => figures
                        .values
                        .extend(values.iter().filter_map(Value::as_f64)),
                    value => figures.sum += value.as_f64().unwrap_or(0.0),
                }
            }
        }
    }
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTS: &str = r#"{"_aws":{"Timestamp":2000,"CloudWatchMetrics":[{"Namespace":"Chat","Dimensions":[["function","route","status"]],"Metrics":[{"Name":"requests","Unit":"Count"}]}]},"function":"send-message","route":"POST /send-message/","status":"202","requests":3}"#;
    const DURATIONS: &str = r#"{"_aws":{"Timestamp":2000,"CloudWatchMetrics":[{"Namespace":"Chat","Dimensions":[["function","route"]],"Metrics":[{"Name":"request_duration","Unit":"Milliseconds"}]}]},"function":"send-message","route":"POST /send-message/","request_duration":[4.0,1.0,2.0,3.0]}"#;

    fn series(metric: &str, dimensions: &str) -> Series {
        Series {
            function: "send-message".into(),
            metric: metric.into(),
            dimensions: dimensions.into(),
        }
    }

    #[test]
    fn counters_add_up_and_histograms_keep_their_values_across_lines() {
        let log = format!(
            "INFO some plain log line\n{REQUESTS}\nnot json {{\n prefix {REQUESTS}\n{DURATIONS}\n{DURATIONS}\n"
        );
        let mut all = BTreeMap::new();
        collect(&log, 0, &mut all);
        assert_eq!(all.len(), 2);
        let requests = &all[&series("requests", "route=POST /send-message/ status=202")];
        assert_eq!(requests.sum, 6.0);
        let durations = &all[&series("request_duration", "route=POST /send-message/")];
        assert_eq!(durations.values.len(), 8);
        assert_eq!(durations.unit.as_deref(), Some("Milliseconds"));
    }

    #[test]
    fn lines_older_than_the_window_are_left_out() {
        let mut all = BTreeMap::new();
        collect(REQUESTS, 2001, &mut all);
        assert!(all.is_empty());
        collect(REQUESTS, 2000, &mut all);
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn quantiles_are_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 50.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn lines_after_the_window_are_left_out() {
        let mut all = BTreeMap::new();
        collect_between(REQUESTS, 0..=1999, &mut all);
        assert!(all.is_empty());
        collect_between(REQUESTS, 2000..=2000, &mut all);
        assert_eq!(all.len(), 1);
    }
}
