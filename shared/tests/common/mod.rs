//! Wiring for tests against the real services started by `make test`: configuration from the
//! environment, a loud failure when a service is missing, and per-test isolation (own tables,
//! own topics) so that tests run in parallel.
#![allow(dead_code)]

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use shared::config::Config;
use shared::kafka;
use shared::store::dynamodb::DynamoStore;

const HOW_TO_START: &str = "run the tests with `make test`, which starts Kafka and DynamoDB \
    Local; or start them with `make services` and export the variables it prints";

fn reachable(address: &str) -> bool {
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

/// The configuration the services were started with. Panics, naming the service and how to
/// start it, when one is not configured or does not answer.
pub fn config() -> Config {
    for var in ["KAFKA_BOOTSTRAP_SERVERS", "DYNAMODB_ENDPOINT"] {
        if std::env::var(var).map_or(true, |v| v.trim().is_empty()) {
            panic!("{var} is not set: {HOW_TO_START}");
        }
    }
    let config = Config::from_env().expect("valid configuration");
    let kafka = config
        .kafka
        .bootstrap_servers
        .split(',')
        .next()
        .unwrap_or_default();
    assert!(
        reachable(kafka),
        "Kafka is not reachable at {kafka}: {HOW_TO_START}"
    );
    let endpoint = config.dynamodb.endpoint.clone().unwrap_or_default();
    let host = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    assert!(
        reachable(host),
        "DynamoDB Local is not reachable at {endpoint}: {HOW_TO_START}"
    );
    config
}

/// A short random name part, so that parallel tests never share tables or topics.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// A store over tables of its own, created for this test.
pub async fn store() -> DynamoStore {
    let mut config = config();
    let prefix = unique("t");
    let tables = &mut config.dynamodb.tables;
    tables.users = format!("{prefix}-users");
    tables.messages = format!("{prefix}-messages");
    tables.connections = format!("{prefix}-connections");
    tables.idempotency = format!("{prefix}-idempotency");
    let store = DynamoStore::from_config(&config.dynamodb).await;
    store.ensure_tables().await.expect("tables created");
    store
}

/// A topic of its own, created for this test.
pub async fn topic(config: &Config, partitions: i32) -> String {
    let name = unique("test");
    kafka::ensure_topics(&config.kafka, &[(&name, partitions)])
        .await
        .expect("topic created");
    name
}

/// A configuration whose services are at addresses where nothing listens.
pub fn unreachable_config() -> Config {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{closed}")),
        ("DYNAMODB_ENDPOINT", format!("http://127.0.0.1:{closed}")),
        ("KAFKA_TIMEOUT_MS", "1500".to_owned()),
        ("DYNAMODB_TIMEOUT_MS", "1500".to_owned()),
    ];
    Config::from_lookup(|k| {
        env.iter()
            .find(|(var, _)| *var == k)
            .map(|(_, v)| v.clone())
    })
    .expect("valid")
}
