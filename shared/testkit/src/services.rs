//! What the test suites share. Tests that need a service get its address from the environment
//! `make test` exports, and fail, naming the service and what to start, when it is missing or
//! does not answer: they never skip. Each test isolates its data (tables, topics, ids of its
//! own), so that tests run in parallel against one stack.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use chat_core::config::Config;

/// What to do when a service is missing.
pub const HOW_TO_START: &str = "run the tests with `make test`, which starts the local stack \
    (Kafka, DynamoDB Local, the functions and the emulators) and exports where it is; or start \
    one with `make services` and export the variables it prints";

/// The value of `var`, or a panic saying what to start.
pub fn require_env(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!("{var} is not set: {HOW_TO_START}"),
    }
}

/// Whether something accepts TCP connections at `host:port`.
pub fn reachable(address: &str) -> bool {
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

/// The configuration of the running Kafka; panics when it is not set or does not answer.
pub fn kafka_config() -> Config {
    require_env("KAFKA_BOOTSTRAP_SERVERS");
    let config = Config::from_env().expect("valid configuration");
    let broker = config
        .kafka
        .bootstrap_servers
        .split(',')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reachable(&broker),
        "Kafka is not reachable at {broker}: {HOW_TO_START}"
    );
    config
}

/// The configuration of the running Kafka and DynamoDB Local; panics, naming the service, when
/// one is not set or does not answer.
pub fn config() -> Config {
    require_env("DYNAMODB_ENDPOINT");
    let config = kafka_config();
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

/// `prefix` and a short random part, so that parallel tests never share tables or topics.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// A random id in a range no seed data uses (2^40 to 2^45), for data a test creates.
pub fn fresh_id() -> u64 {
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    (1 << 40) + random % (1 << 45)
}

/// `config` with tables of its own (named, not created).
pub fn with_own_tables(mut config: Config) -> Config {
    let prefix = unique("t");
    let tables = &mut config.dynamodb.tables;
    tables.users = format!("{prefix}-users");
    tables.messages = format!("{prefix}-messages");
    tables.connections = format!("{prefix}-connections");
    tables.idempotency = format!("{prefix}-idempotency");
    tables.members = format!("{prefix}-members");
    tables.limits = format!("{prefix}-limits");
    config
}

/// A configuration whose services are at an address where nothing listens.
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
