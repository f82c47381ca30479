//! The monthly bill on AWS from what `chat-bench cost` measured: public list prices of one
//! region (US East, N. Virginia), the template's function sizes, and a stated model of how a
//! chat of a given size is used. Free tiers are left out. docs/cost.md explains every line.

use crate::cost::{Measured, Phase};

/// US East (N. Virginia) list prices in USD, as published by AWS (read 2026-12-06; see
/// docs/cost.md for which could be checked offline and which are from our last reading).
pub mod price {
    /// Lambda, arm64: per request and per GB-second.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// The Kafka trigger's provisioned mode: per event poller unit hour.
    pub const EVENT_POLLER_HOUR: f64 = 0.185;
    /// API Gateway: HTTP API request (first 300 M), WebSocket message (32 KB, first 1 B) and
    /// connection minute.
    pub const HTTP_REQUEST: f64 = 1.00 / 1e6;
    pub const WEBSOCKET_MESSAGE: f64 = 1.00 / 1e6;
    pub const CONNECTION_MINUTE: f64 = 0.25 / 1e6;
    /// DynamoDB on demand (Standard table class): write and read request units, storage.
    pub const WRITE_UNIT: f64 = 0.625 / 1e6;
    pub const READ_UNIT: f64 = 0.125 / 1e6;
    pub const DYNAMODB_GB_MONTH: f64 = 0.25;
    /// MSK provisioned: broker hours (kafka.t3.small, kafka.m7g.large) and storage.
    pub const BROKER_HOUR_T3_SMALL: f64 = 0.0456;
    pub const BROKER_HOUR_M7G_LARGE: f64 = 0.204;
    pub const MSK_GB_MONTH: f64 = 0.10;
    /// MSK Serverless: cluster hour, partition hour, data in and out, storage.
    pub const SERVERLESS_CLUSTER_HOUR: f64 = 0.75;
    pub const SERVERLESS_PARTITION_HOUR: f64 = 0.0015;
    pub const SERVERLESS_GB_IN: f64 = 0.10;
    pub const SERVERLESS_GB_OUT: f64 = 0.05;
    /// CloudFront (North America): per GB out and per 10,000 HTTPS requests.
    pub const CLOUDFRONT_GB: f64 = 0.085;
    pub const CLOUDFRONT_10K_REQUESTS: f64 = 0.01;
    /// CloudWatch Logs: ingestion and storage per GB.
    pub const LOGS_GB: f64 = 0.50;
    pub const LOGS_GB_MONTH: f64 = 0.03;
    /// X-Ray: per trace recorded.
    pub const TRACE: f64 = 5.00 / 1e6;
    /// CloudWatch: per custom metric a month (first 10,000).
    pub const METRIC_MONTH: f64 = 0.30;
}

/// How the chat is used: the model every bill is computed with (docs/cost.md).
pub mod usage {
    pub const DAYS: f64 = 30.0;
    pub const HOURS: f64 = 730.0;
    /// Messages a user sends a day: the users are the messages a day over this.
    pub const MESSAGES_PER_USER_DAY: f64 = 20.0;
    /// Each user is online (one socket) this many minutes a day, and opens it this often.
    pub const ONLINE_MINUTES_PER_DAY: f64 = 480.0;
    pub const CONNECTS_PER_USER_DAY: f64 = 2.0;
    /// History pages and page loads a user makes a day.
    pub const HISTORY_PAGES_PER_USER_DAY: f64 = 10.0;
    pub const PAGE_LOADS_PER_USER_DAY: f64 = 1.0;
    /// Edits and deletes, as a share of messages sent.
    pub const EDIT_SHARE: f64 = 0.02;
    pub const DELETE_SHARE: f64 = 0.01;
    /// A stored message item, with its index entry, in bytes; messages are kept a year (the
    /// bill of month 12).
    pub const STORED_MESSAGE_BYTES: f64 = 600.0;
    pub const STORED_MONTHS: f64 = 12.0;
    /// Kafka keeps a week, three replicas; the chat topic has 12 partitions and the
    /// dead-letter topic 1 (docs/deploy.md).
    pub const KAFKA_RETENTION_DAYS: f64 = 7.0;
    pub const KAFKA_REPLICAS: f64 = 3.0;
    pub const PARTITIONS: f64 = 13.0;
    /// Provisioned pollers kept by the template's `MinimumPollers`.
    pub const MINIMUM_POLLERS: f64 = 1.0;
    /// Logs are kept for the template's default `LogRetentionDays`.
    pub const LOG_RETENTION_MONTHS: f64 = 0.5;
    /// X-Ray's default sampling: the first request each second, then 5 %.
    pub const TRACED_SHARE: f64 = 0.05;
    /// The authorizer runs on every `$connect` on AWS (make dev trusts the client and does not
    /// call it): one invocation and one consistent membership read, billed this long.
    pub const AUTHORIZER_MS: f64 = 3.0;
}

/// The template's memory size of a function, in GB.
fn memory_gb(function: &str) -> f64 {
    match function {
        "kafka-consumer" => 0.5,
        _ => 0.25,
    }
}

/// One size of chat: messages a day, members of a group (each online member's socket gets each
/// message).
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub messages_per_day: f64,
    pub group: usize,
}

pub const SIZES: [f64; 3] = [1_000.0, 100_000.0, 10_000_000.0];
pub const GROUPS: [usize; 3] = [2, 20, 200];

/// The monthly bill of a size, line by line (name, USD), MSK provisioned and MSK Serverless
/// as alternatives (the second total uses MSK Serverless).
#[derive(Debug, Clone, PartialEq)]
pub struct Bill {
    pub lines: Vec<(&'static str, f64)>,
    pub msk_provisioned: f64,
    pub msk_serverless: f64,
}

impl Bill {
    /// Every line but Kafka's, plus the cheaper Kafka.
    pub fn total(&self) -> f64 {
        self.lines.iter().map(|(_, usd)| usd).sum::<f64>()
            + self.msk_provisioned.min(self.msk_serverless)
    }

    /// The biggest line, Kafka (the cheaper kind) included.
    pub fn biggest(&self) -> (&'static str, f64) {
        let kafka = if self.msk_provisioned <= self.msk_serverless {
            ("MSK provisioned", self.msk_provisioned)
        } else {
            ("MSK Serverless", self.msk_serverless)
        };
        self.lines
            .iter()
            .copied()
            .chain([kafka])
            .fold(("", f64::MIN), |a, b| if b.1 > a.1 { b } else { a })
    }
}

/// What `count` operations of a phase cost in Lambda, DynamoDB, WebSocket messages, logs.
#[derive(Debug, Default, Clone, Copy)]
struct Spend {
    lambda: f64,
    invocations: f64,
    dynamodb: f64,
    websocket: f64,
    logs_gb: f64,
    kafka_bytes: f64,
}

fn spend(phase: &Phase, count: f64) -> Spend {
    let mut out = Spend::default();
    for (function, used) in &phase.functions {
        out.invocations += used.invocations * count;
        out.lambda += used.invocations * count * price::LAMBDA_REQUEST
            + used.billed_ms / 1000.0 * memory_gb(function) * count * price::LAMBDA_GB_SECOND;
        out.dynamodb +=
            (used.read_units * price::READ_UNIT + used.write_units * price::WRITE_UNIT) * count;
    }
    out.websocket = phase.websocket_messages * count * price::WEBSOCKET_MESSAGE;
    out.logs_gb = phase.log_bytes * count / 1e9;
    out.kafka_bytes = phase.kafka_bytes * count;
    out
}

/// The month's bill of `size` from the figures measured, or `None` when the group size was
/// not measured.
pub fn bill(measured: &Measured, size: Size, page_bytes: f64) -> Option<Bill> {
    use usage::*;
    let message = measured.message.get(&size.group)?;
    let month = |per_day: f64| per_day * DAYS;
    let messages = month(size.messages_per_day);
    let users = (size.messages_per_day / MESSAGES_PER_USER_DAY).max(size.group as f64);
    let connects = month(users * CONNECTS_PER_USER_DAY);
    let pages = month(users * HISTORY_PAGES_PER_USER_DAY);
    let parts = [
        spend(message, messages),
        spend(&measured.edit, messages * EDIT_SHARE),
        spend(&measured.delete, messages * DELETE_SHARE),
        spend(&measured.history_page, pages),
        spend(&measured.connect, connects),
        spend(&measured.close, connects),
    ];
    let sum = |f: fn(&Spend) -> f64| parts.iter().map(f).sum::<f64>();
    let authorizer = connects
        * (price::LAMBDA_REQUEST
            + AUTHORIZER_MS / 1000.0 * memory_gb("ws-authorize") * price::LAMBDA_GB_SECOND);
    let http_requests = messages * (1.0 + EDIT_SHARE + DELETE_SHARE) + pages;
    let connection_minutes = month(users * ONLINE_MINUTES_PER_DAY);
    let stored_gb = messages * STORED_MONTHS * STORED_MESSAGE_BYTES / 1e9;
    let logs_gb = sum(|s| s.logs_gb);
    let kafka_gb_month = sum(|s| s.kafka_bytes) / DAYS * KAFKA_RETENTION_DAYS / 1e9;
    let page_loads = month(users * PAGE_LOADS_PER_USER_DAY);
    let invocations = sum(|s| s.invocations) + connects;
    // Busier than a few messages a second wants brokers that are not burstable.
    let broker_hour = if size.messages_per_day > 1_000_000.0 {
        price::BROKER_HOUR_M7G_LARGE
    } else {
        price::BROKER_HOUR_T3_SMALL
    };
    let broker_storage_gb = (kafka_gb_month * 2.0).max(10.0);
    let msk_provisioned =
        3.0 * broker_hour * HOURS + KAFKA_REPLICAS * broker_storage_gb * price::MSK_GB_MONTH;
    let kafka_gb = sum(|s| s.kafka_bytes) / 1e9;
    let msk_serverless = price::SERVERLESS_CLUSTER_HOUR * HOURS
        + PARTITIONS * price::SERVERLESS_PARTITION_HOUR * HOURS
        + kafka_gb * (price::SERVERLESS_GB_IN + price::SERVERLESS_GB_OUT)
        + kafka_gb_month * price::MSK_GB_MONTH;
    let lines = vec![
        ("Lambda (functions)", sum(|s| s.lambda) + authorizer),
        (
            "Kafka trigger, provisioned pollers",
            MINIMUM_POLLERS * price::EVENT_POLLER_HOUR * HOURS,
        ),
        ("API Gateway HTTP API", http_requests * price::HTTP_REQUEST),
        ("API Gateway WebSocket messages", sum(|s| s.websocket)),
        (
            "API Gateway WebSocket connection minutes",
            connection_minutes * price::CONNECTION_MINUTE,
        ),
        (
            "DynamoDB requests",
            sum(|s| s.dynamodb) + connects * price::READ_UNIT,
        ),
        ("DynamoDB storage", stored_gb * price::DYNAMODB_GB_MONTH),
        (
            "CloudFront (the page)",
            page_loads * page_bytes / 1e9 * price::CLOUDFRONT_GB
                + page_loads * 3.0 / 1e4 * price::CLOUDFRONT_10K_REQUESTS,
        ),
        (
            "CloudWatch Logs",
            logs_gb * (price::LOGS_GB + LOG_RETENTION_MONTHS * price::LOGS_GB_MONTH),
        ),
        ("X-Ray traces", traced(invocations) * price::TRACE),
        (
            "CloudWatch custom metrics (EMF)",
            measured.series().len() as f64 * price::METRIC_MONTH,
        ),
    ];
    Some(Bill {
        lines,
        msk_provisioned,
        msk_serverless,
    })
}

/// Invocations X-Ray records a month under its default sampling, traffic spread evenly: one a
/// second, then a share of the rest.
fn traced(invocations: f64) -> f64 {
    let seconds = usage::HOURS * 3600.0;
    invocations.min(seconds) + usage::TRACED_SHARE * (invocations - seconds).max(0.0)
}

/// The size of the page a browser loads (index.html, app.js, app.css), from the checkout.
pub fn page_bytes() -> Result<f64, String> {
    ["web/index.html", "web/app.js", "web/app.css"]
        .iter()
        .map(|path| {
            std::fs::metadata(path)
                .map(|meta| meta.len() as f64)
                .map_err(|e| format!("{path}: {e} (run chat-bench from the checkout's root)"))
        })
        .sum()
}

fn usd(amount: f64) -> String {
    if amount >= 100.0 {
        format!("${amount:.0}")
    } else {
        format!("${amount:.2}")
    }
}

/// The bills of every size and group measured, as markdown.
pub fn report(measured: &Measured, page_bytes: f64) -> String {
    let mut out = String::from(
        "\nThe monthly bill on AWS (us-east-1 list prices, no free tier; the usage model is in \
         docs/cost.md), total with the cheaper Kafka, and its biggest line:\n\n| messages a day |",
    );
    for group in GROUPS {
        out += &format!(" groups of {group} |");
    }
    out += "\n|---|---|---|---|\n";
    for messages_per_day in SIZES {
        out += &format!("| {messages_per_day:.0} |");
        for group in GROUPS {
            let size = Size {
                messages_per_day,
                group,
            };
            out += &match bill(measured, size, page_bytes) {
                Some(bill) => {
                    let (line, amount) = bill.biggest();
                    format!(" {} ({line} {}) |", usd(bill.total()), usd(amount))
                }
                None => " not measured |".into(),
            };
        }
        out += "\n";
    }
    for messages_per_day in SIZES {
        let size = Size {
            messages_per_day,
            group: 20,
        };
        let Some(bill) = bill(measured, size, page_bytes) else {
            continue;
        };
        out += &format!(
            "\n| {messages_per_day:.0} messages a day, groups of 20 | USD a month |\n|---|---|\n"
        );
        for (line, amount) in &bill.lines {
            out += &format!("| {line} | {} |\n", usd(*amount));
        }
        out += &format!(
            "| MSK provisioned (3 brokers) | {} |\n| MSK Serverless | {} |\n| total (cheaper Kafka) | {} |\n",
            usd(bill.msk_provisioned),
            usd(bill.msk_serverless),
            usd(bill.total())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::Use;

    fn phase(function: &str, used: Use, websocket_messages: f64) -> Phase {
        Phase {
            functions: [(function.to_owned(), used)].into(),
            websocket_messages,
            kafka_bytes: 500.0,
            log_bytes: 1000.0,
            series: Default::default(),
        }
    }

    fn measured() -> Measured {
        let send = Use {
            invocations: 1.0,
            billed_ms: 10.0,
            read_units: 2.0,
            write_units: 2.0,
        };
        Measured {
            message: [(20, phase("send-message", send, 20.0))].into(),
            ..Measured::default()
        }
    }

    #[test]
    fn a_bill_adds_its_lines_and_kafka_the_cheaper_way() {
        let size = Size {
            messages_per_day: 100_000.0,
            group: 20,
        };
        let bill = bill(&measured(), size, 40_000.0).expect("measured");
        let line = |name: &str| {
            bill.lines
                .iter()
                .find(|(line, _)| *line == name)
                .map(|(_, usd)| *usd)
                .expect(name)
        };
        // 3 M messages a month, 20 WebSocket messages each, $1 a million.
        assert!((line("API Gateway WebSocket messages") - 60.0).abs() < 1e-6);
        // 1 invocation of 10 ms at 0.25 GB each, plus 2 connects a user a day (5,000 users).
        let connects = 5_000.0 * 2.0 * 30.0;
        let lambda = 3e6 * (0.2 / 1e6 + 0.01 * 0.25 * price::LAMBDA_GB_SECOND)
            + connects * (0.2 / 1e6 + 0.003 * 0.25 * price::LAMBDA_GB_SECOND);
        assert!((line("Lambda (functions)") - lambda).abs() < 1e-6);
        assert!(bill.msk_provisioned < bill.msk_serverless);
        let expected = bill.lines.iter().map(|(_, usd)| usd).sum::<f64>() + bill.msk_provisioned;
        assert!((bill.total() - expected).abs() < 1e-9);
        assert!(bill.biggest().1 >= line("API Gateway WebSocket messages"));
    }

    #[test]
    fn a_group_size_not_measured_has_no_bill() {
        let size = Size {
            messages_per_day: 1_000.0,
            group: 200,
        };
        assert!(bill(&measured(), size, 40_000.0).is_none());
        assert!(report(&measured(), 40_000.0).contains("not measured"));
    }
}
