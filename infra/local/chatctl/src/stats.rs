//! `chatctl stats`: the figures in the functions' CloudWatch Embedded Metric Format lines, read
//! from the local stack's logs, the way CloudWatch would chart them: counters summed,
//! durations as count, p50, p99 and maximum, per function and dimensions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chat_core::emf::{collect, quantile, Figures, Series};

/// The table `chatctl stats` prints, its columns as wide as their longest entry.
pub fn table(all: &BTreeMap<Series, Figures>) -> String {
    let metric_name = |series: &Series, figures: &Figures| match figures.unit.as_deref() {
        Some("Milliseconds") => format!("{} (ms)", series.metric),
        _ => series.metric.clone(),
    };
    let width = |column: &dyn Fn(&Series, &Figures) -> usize, title: &str| {
        all.iter()
            .map(|(s, f)| column(s, f))
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (wf, wm, wd) = (
        width(&|s, _| s.function.len(), "function"),
        width(&|s, f| metric_name(s, f).len(), "metric"),
        width(&|s, _| s.dimensions.len(), "dimensions"),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<wf$}  {:<wm$}  {:<wd$}  {:>9} {:>9} {:>9} {:>9}",
        "function", "metric", "dimensions", "count", "p50", "p99", "max"
    );
    for (series, figures) in all {
        let metric = metric_name(series, figures);
        let (function, dimensions) = (&series.function, &series.dimensions);
        let _ = if figures.values.is_empty() {
            writeln!(
                out,
                "{function:<wf$}  {metric:<wm$}  {dimensions:<wd$}  {:>9}",
                figures.sum
            )
        } else {
            let values = &figures.values;
            let max = values.iter().copied().fold(f64::MIN, f64::max);
            writeln!(
                out,
                "{function:<wf$}  {metric:<wm$}  {dimensions:<wd$}  {:>9} {:>9.1} {:>9.1} {:>9.1}",
                values.len(),
                quantile(values, 0.5),
                quantile(values, 0.99),
                max
            )
        };
    }
    out
}

/// Reads every `*.log` file in `dir` and prints the figures of the last `seconds` (all with 0).
pub fn stats(dir: &Path, seconds: u64) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read the logs in {} ({e}); start the stack with `make dev`, or name a \
             folder of logs with --logs",
            dir.display()
        )
    })?;
    let since_ms = if seconds == 0 {
        0
    } else {
        (chrono::Utc::now().timestamp_millis() as u64).saturating_sub(seconds * 1000)
    };
    let mut all = BTreeMap::new();
    let mut files = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            collect(&String::from_utf8_lossy(&bytes), since_ms, &mut all);
            files += 1;
        }
    }
    let window = if seconds == 0 {
        "all time".to_owned()
    } else {
        format!("the last {seconds} s")
    };
    println!(
        "CloudWatch metrics (EMF lines) of {window}, from {files} log files in {}",
        dir.display()
    );
    if all.is_empty() {
        println!("none yet: metrics are written when functions are invoked");
    } else {
        print!("{}", table(&all));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTS: &str = r#"{"_aws":{"Timestamp":2000,"CloudWatchMetrics":[{"Namespace":"Chat","Dimensions":[["function","route","status"]],"Metrics":[{"Name":"requests","Unit":"Count"}]}]},"function":"send-message","route":"POST /send-message/","status":"202","requests":3}"#;
    const DURATIONS: &str = r#"{"_aws":{"Timestamp":2000,"CloudWatchMetrics":[{"Namespace":"Chat","Dimensions":[["function","route"]],"Metrics":[{"Name":"request_duration","Unit":"Milliseconds"}]}]},"function":"send-message","route":"POST /send-message/","request_duration":[4.0,1.0,2.0,3.0]}"#;

    #[test]
    fn the_table_names_units_and_shows_quantiles() {
        let mut all = BTreeMap::new();
        collect(&format!("{REQUESTS}\n{DURATIONS}\n"), 0, &mut all);
        let table = table(&all);
        assert!(table.contains("request_duration (ms)"), "{table}");
        assert!(table.contains("2.0") && table.contains("4.0"), "{table}");
    }

    #[test]
    fn a_missing_folder_says_what_to_start() {
        let error = stats(Path::new("/nonexistent/logs"), 60).expect_err("no folder");
        assert!(error.contains("make dev"), "{error}");
    }
}
