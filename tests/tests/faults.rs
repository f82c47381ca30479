//! Fault injection under a steady load of sends, each retried with its `client_message_id`
//! until it gets a 2xx: the broker paused and restarted, DynamoDB Local stopped and restarted
//! and paused (the stream processor then fails mid-batch), the event source killed and
//! restarted, a socket that never reads, and poison records of every kind. After each, every
//! acknowledged send is stored exactly once and in order, every reading socket got every
//! message in order, and the stack works on without a restart (see `e2e_tests::load`).
//!
//! One test binary, one fault at a time: the tests take a lock, since each breaks the stack
//! every other test uses.

use std::time::Duration;

use base64::Engine;
use chat_kafka::{self as kafka, KafkaContext};
use chat_testkit::services::kafka_config;
use e2e_tests::load::{
    check, load_with_fault, restart_service, service_dir, service_pid, signal, Reader,
};
use e2e_tests::{fresh_user, subscribe};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends per test, per second, and when into the load the fault begins.
const SENDS: u64 = 120;
const RATE: u64 = 10;
const FAULT_AT: Duration = Duration::from_secs(2);

fn tag(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh user and a socket on its group, a load of sends while `fault` runs, then the checks.
async fn under_load<F>(name: &str, fault: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let user = fresh_user(false).await;
    let reader = Reader::open(user.group_id).await;
    let acks = load_with_fault(&user, &tag(name), SENDS, RATE, async move {
        tokio::time::sleep(FAULT_AT).await;
        fault.await;
    })
    .await;
    check(name, &user, &acks, &[&reader]).await;
}

/// Pauses a process (SIGSTOP) for `how_long`.
async fn pause(pid: i32, how_long: Duration) {
    signal(pid, "STOP");
    tokio::time::sleep(how_long).await;
    signal(pid, "CONT");
}

async fn restart(dir: &'static str, name: &'static str) {
    tokio::task::spawn_blocking(move || restart_service(&service_dir(dir), name))
        .await
        .expect("restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_paused_for_10_seconds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let pid = service_pid(&service_dir("kafka"), "Kafka");
    under_load("broker-paused", pause(pid, Duration::from_secs(10))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_restarted() {
    let _one = ONE_AT_A_TIME.lock().await;
    under_load("broker-restarted", restart("kafka", "Kafka")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_stopped_and_restarted() {
    let _one = ONE_AT_A_TIME.lock().await;
    under_load("dynamodb-restarted", restart("dynamodb", "DynamoDB")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_paused_so_the_processor_fails_mid_batch() {
    let _one = ONE_AT_A_TIME.lock().await;
    let pid = service_pid(&service_dir("dynamodb"), "DynamoDB");
    under_load("dynamodb-paused", pause(pid, Duration::from_secs(6))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_source_killed_and_restarted() {
    let _one = ONE_AT_A_TIME.lock().await;
    under_load("event-source-killed", async {
        signal(service_pid(&service_dir("api"), "event-source"), "KILL");
        tokio::time::sleep(Duration::from_secs(3)).await;
        restart("api", "event-source").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_reads_costs_only_itself() {
    let _one = ONE_AT_A_TIME.lock().await;
    let user = fresh_user(false).await;
    let other_group = fresh_user(false).await;
    let reader = Reader::open(user.group_id).await;
    let elsewhere = Reader::open(other_group.group_id).await;
    // Handshakes, then never reads: its frames pile up in the emulator and the kernel.
    let stuck = subscribe(&format!("/subscribe/{}", user.group_id)).await;
    // 1,400 messages of 12 KB straight into the log, in the group's partition.
    let config = kafka_config();
    let producer: FutureProducer<KafkaContext> = kafka::client_config(&config.kafka)
        .expect("kafka settings")
        .create()
        .expect("producer");
    let flood_tag = tag("flood");
    let group = user.group_id.to_string();
    let user_id = user.user_id.get();
    let flood = async move {
        for k in 0..1400 {
            let text = format!("{flood_tag}-{k}-{}", "€".repeat(4000));
            let value = json!({"user_id": user_id, "message": text}).to_string();
            producer
                .send(
                    FutureRecord::to(&config.kafka.chat_topic)
                        .key(&group)
                        .payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .expect("flood record");
        }
    };
    // Both groups under load at once, while the flood goes on.
    let (stuck_tag, other_tag) = (tag("stuck"), tag("other"));
    let (acks, other_acks) = tokio::join!(
        load_with_fault(&user, &stuck_tag, SENDS, RATE, flood),
        load_with_fault(&other_group, &other_tag, SENDS / 2, RATE / 2, async {}),
    );
    check(
        "socket that never reads (its group)",
        &user,
        &acks,
        &[&reader],
    )
    .await;
    check(
        "socket that never reads (another group)",
        &other_group,
        &other_acks,
        &[&elsewhere],
    )
    .await;
    // The reading socket of the flooded group gets the whole flood too (17 MB takes a while).
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let flooded = reader
            .created()
            .iter()
            .filter(|(_, t)| t.contains("flood-"))
            .count();
        if flooded >= 1400 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reading socket got {flooded} of the 1,400 flood messages"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(stuck);
}

/// A group change through the API, retried as a client does while a service is down: until a
/// 2xx, or a 404 on a retried removal (the first attempt got through). The status it ended on.
async fn until_accepted(method: reqwest::Method, url: &str, body: Option<Value>) -> u16 {
    let client = e2e_tests::http();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut retried = false;
    loop {
        let mut request = client.request(method.clone(), url);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let status = match request.send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        match status {
            200..=299 => return status,
            404 if retried && method == reqwest::Method::DELETE => return status,
            0 | 500..=599 => {}
            other => panic!("{method} {url}: {other}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{method} {url}: never accepted"
        );
        retried = true;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_survive_a_paused_store_and_broker_applied_once_each() {
    let _one = ONE_AT_A_TIME.lock().await;
    let api = e2e_tests::api_url();
    let owner = fresh_user(false).await;
    let g = e2e_tests::create_group(owner.user_id, "under faults").await;
    let mut people = Vec::new();
    for _ in 0..6 {
        people.push(fresh_user(false).await.user_id.get());
    }
    let members = format!("{api}/groups/{g}/members");
    let add = |who: u64| {
        let url = format!("{members}?user_id={}", owner.user_id);
        async move { until_accepted(reqwest::Method::POST, &url, Some(json!({"user_id": who}))).await }
    };
    // The store paused while four members are added and one of them removed again.
    let store = service_pid(&service_dir("dynamodb"), "DynamoDB");
    let (_, statuses) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            pause(store, Duration::from_secs(6)).await;
        },
        futures_util::future::join_all(people[..4].iter().map(|&who| add(who))),
    );
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let leave = format!("{members}/{}?user_id={}", people[0], people[0]);
    e2e_tests::eventually("the first member is in", || async {
        let list = member_ids(&members, owner.user_id.get()).await;
        list.contains(&people[0])
    })
    .await;
    until_accepted(reqwest::Method::DELETE, &leave, None).await;
    // The broker paused while two more are added.
    let broker = service_pid(&service_dir("kafka"), "Kafka");
    let (_, statuses) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            pause(broker, Duration::from_secs(8)).await;
        },
        futures_util::future::join_all(people[4..].iter().map(|&who| add(who))),
    );
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let mut expected: Vec<u64> = people[1..].to_vec();
    expected.push(owner.user_id.get());
    expected.sort_unstable();
    e2e_tests::eventually("every accepted change applied, none lost", || async {
        member_ids(&members, owner.user_id.get()).await == expected
    })
    .await;
    // And it stays so: no replay or late duplicate brings the member who left back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(member_ids(&members, owner.user_id.get()).await, expected);
}

/// The members of a group, by user id, as `caller` lists them.
async fn member_ids(members_url: &str, caller: u64) -> Vec<u64> {
    let Ok(response) = e2e_tests::http()
        .get(format!("{members_url}?user_id={caller}"))
        .send()
        .await
    else {
        return Vec::new();
    };
    let list: Value = response.json().await.unwrap_or(Value::Null);
    list.as_array()
        .map(|l| l.iter().filter_map(|m| m["user_id"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_of_every_kind_never_block_a_partition() {
    let _one = ONE_AT_A_TIME.lock().await;
    let user = fresh_user(false).await;
    let reader = Reader::open(user.group_id).await;
    let config = kafka_config();
    let group = user.group_id.to_string();
    let user_id = user.user_id.get();
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{{{ not json".to_vec()),
        ("unknown shape", br#"{"type": "message_exploded", "x": 1}"#.to_vec()),
        ("invalid fields", json!({"type": "message_sent", "group_id": user.group_id, "user_id": user_id, "message": "", "sent_at": "2026-01-01T00:00:00Z"}).to_string().into_bytes()),
        ("unknown user", json!({"user_id": 999_999_999_999u64, "message": "who?"}).to_string().into_bytes()),
        ("too large", json!({"user_id": user_id, "message": "x".repeat(760 * 1024)}).to_string().into_bytes()),
        ("timestamp out of range", json!({"type": "message_sent", "group_id": user.group_id, "user_id": user_id, "message": "when?", "sent_at": "+275760-09-13T00:00:00Z"}).to_string().into_bytes()),
        ("wrong group", json!({"type": "message_sent", "group_id": 1, "user_id": user_id, "message": "not mine", "sent_at": "2026-01-01T00:00:00Z"}).to_string().into_bytes()),
    ];
    let kinds = poison.len();
    let acks = load_with_fault(&user, &tag("poison"), SENDS, RATE, async move {
        let producer: FutureProducer<KafkaContext> = kafka::client_config(&config.kafka)
            .expect("kafka settings")
            .set("message.max.bytes", "2000000")
            .create()
            .expect("producer");
        tokio::time::sleep(FAULT_AT).await;
        for (kind, value) in poison {
            producer
                .send(
                    FutureRecord::to(&config.kafka.chat_topic)
                        .key(&group)
                        .payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("producing the {kind} record: {e}"));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    check("poison records", &user, &acks, &[&reader]).await;
    let letters = dead_letters_for(&user.group_id.to_string(), kinds).await;
    assert_eq!(letters.len(), kinds, "{letters:?}");
    for letter in &letters {
        assert!(letter["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(letter["offset"].as_i64().is_some() && letter["partition"].as_i64().is_some());
        let value = letter["value"].as_str().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap_or_default();
        assert!(bytes.len() <= 256 * 1024);
    }
    assert!(
        letters.iter().any(|l| l["truncated"] == true),
        "the large record's letter is cut"
    );
}

/// The dead letters keyed by `key`, waiting until `count` are there.
async fn dead_letters_for(key: &str, count: usize) -> Vec<Value> {
    let config = kafka_config();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let letters: Vec<Value> =
            e2e_tests::topic_records(&config, &config.kafka.dead_letter_topic)
                .into_iter()
                .filter(|(k, _)| k == key)
                .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
                .collect();
        if letters.len() >= count || std::time::Instant::now() > deadline {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
