//! One connection, record or partition costs only itself: stuck and young sockets, failing
//! dead letters, outages, repeated publishes of one send, records of any shape.

use super::*;

#[tokio::test]
async fn a_socket_that_takes_nothing_is_cut_off_and_the_others_get_everything() {
    let f = fixture();
    for i in 0..1000 {
        connect(&f, &format!("c{i}"), 2).await;
    }
    connect(&f, "other-group", 1).await;
    f.pusher.stick("c7");
    let started = std::time::Instant::now();
    let records: Vec<(i32, i64, Value)> = (0..20)
        .map(|i| (1, i, sent(3, 2, &format!("m{i}"))))
        .collect();
    let mut records = records;
    records.push((0, 0, sent(1, 1, "group one")));
    let report = f
        .processor
        .process(&event(&records))
        .await
        .expect("processed")
        .report;
    assert!(
        started.elapsed() < FAN_OUT_BUDGET,
        "{:?}",
        started.elapsed()
    );
    assert_eq!((report.applied, report.cut_off, report.gone), (21, 1, 0));
    assert_eq!(report.pushed, 999 * 20 + 1);
    assert_eq!(f.pusher.disconnected(), ["c7"]);
    assert_eq!(f.store.get_connection("c7").await, Ok(None));
    assert_eq!(f.pusher.frames("c999").len(), 20);
    assert_eq!(f.pusher.frames("other-group").len(), 1);
}

#[tokio::test]
async fn a_410_within_the_connect_window_is_retried_not_forgotten() {
    let f = fixture();
    connect_at(&f, "young", 1, Utc::now()).await;
    f.pusher.close("young");
    let pusher = f.pusher.clone();
    let opens = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        pusher.open("young");
    });
    let report = f
        .processor
        .process(&event(&[(0, 0, sent(1, 1, "hello early"))]))
        .await
        .expect("processed")
        .report;
    opens.await.expect("task");
    assert_eq!((report.pushed, report.gone), (1, 0));
    assert_eq!(f.pusher.frames("young").len(), 1);
    assert!(f
        .store
        .get_connection("young")
        .await
        .expect("get")
        .is_some());
}

#[tokio::test]
async fn a_failing_dead_letter_stops_only_its_partition_at_that_record() {
    let f = fixture();
    f.publisher
        .fail_with(chat_core::publish::PublishError::Unavailable("down".into()));
    let outcome = f
        .processor
        .process(&event(&[
            (0, 0, sent(1, 1, "a")),
            (0, 1, sent(2, 1, "b")),
            (0, 2, Value::String("{".into())),
            (0, 3, sent(2, 1, "after the poison")),
            (1, 5, sent(3, 2, "other partition")),
        ]))
        .await
        .expect("partial success");
    assert_eq!(
        outcome.failures,
        [ItemIdentifier {
            partition: "chat-events-0".into(),
            offset: 2
        }]
    );
    assert_eq!(texts(&f.store, 1).await, ["a", "b"]);
    assert_eq!(texts(&f.store, 2).await, ["other partition"]);
    // The retry, from the failed record on, once the broker is back.
    f.publisher.recover();
    let outcome = f
        .processor
        .process(&event(&[
            (0, 2, Value::String("{".into())),
            (0, 3, sent(2, 1, "after the poison")),
        ]))
        .await
        .expect("retried");
    assert!(outcome.failures.is_empty());
    assert_eq!(texts(&f.store, 1).await, ["a", "b", "after the poison"]);
}

#[tokio::test]
async fn a_store_outage_fails_the_whole_batch_for_a_retry() {
    let f = fixture();
    let batch = event(&[(0, 0, sent(1, 1, "retry me")), (1, 0, sent(3, 2, "me too"))]);
    f.store.fail_with(StoreError::Unavailable {
        op: "GetItem",
        cause: "down".into(),
    });
    assert!(matches!(
        f.processor.process(&batch).await,
        Err(ProcessError::Store(_))
    ));
    f.store.recover();
    let outcome = f
        .processor
        .process(&batch)
        .await
        .expect("the retry succeeds");
    assert!(outcome.failures.is_empty());
    assert_eq!(texts(&f.store, 1).await, ["retry me"]);
}

#[tokio::test]
async fn a_push_outage_cuts_connections_off_but_never_fails_the_batch() {
    let f = fixture();
    connect(&f, "c", 1).await;
    f.pusher.fail_with(PushError::Unavailable("503".into()));
    let outcome = f
        .processor
        .process(&event(&[(0, 0, sent(1, 1, "stored anyway"))]))
        .await
        .expect("processed");
    assert!(outcome.failures.is_empty());
    assert_eq!(outcome.report.cut_off, 1);
    assert_eq!(texts(&f.store, 1).await, ["stored anyway"]);
}

#[tokio::test]
async fn a_send_published_twice_is_stored_and_pushed_once() {
    let f = fixture();
    connect(&f, "c", 1).await;
    let mut once = sent(1, 1, "once");
    once["client_message_id"] = json!("k-1");
    let report = f
        .processor
        .process(&event(&[(0, 0, once.clone()), (0, 1, once.clone())]))
        .await
        .expect("processed")
        .report;
    assert_eq!((report.applied, report.duplicates), (1, 1));
    // A retried batch, and the second copy alone, change nothing.
    f.processor
        .process(&event(&[(0, 0, once.clone()), (0, 1, once.clone())]))
        .await
        .expect("replay");
    f.processor
        .process(&event(&[(0, 1, once)]))
        .await
        .expect("second copy");
    assert_eq!(texts(&f.store, 1).await, ["once"]);
    let frames = f.pusher.frames("c");
    assert!(frames.iter().all(|fr| fr["id"] == id(0, 0)), "{frames:?}");
}

#[tokio::test]
async fn records_of_any_shape_cost_only_themselves() {
    let f = fixture();
    let good = |offset: i64, text: &str| {
        json!({"topic": "chat-events", "partition": 0, "offset": offset,
               "timestamp": 1_767_225_600_000i64, "key": b64(b"1"),
               "value": b64(sent(1, 1, text).to_string().as_bytes())})
    };
    let legacy = b64(br#"{"user_id": 1, "message": "bare"}"#);
    let huge = b64(&vec![b' '; 760 * 1024]);
    let far_future = sent(1, 1, "when")
        .to_string()
        .replace("2026-01-01", "+275760-01-01");
    let records = vec![
        good(0, "first"),
        json!({"partition": 0, "offset": 1, "timestamp": i64::MAX, "value": legacy}),
        json!({"partition": 0, "offset": 2, "timestamp": -1, "value": legacy}),
        json!({"partition": 0, "offset": 3, "timestamp": "soon", "value": 12}),
        json!({"partition": 0, "offset": 4, "value": huge}),
        json!({"partition": 0, "offset": 5, "value": b64(far_future.as_bytes())}),
        json!({"partition": 0, "offset": 6, "value": b64(b"{\"type\": \"message_sent\"}")}),
        json!({"partition": 0, "offset": 7}),
        json!({"offset": 8, "value": "e30="}),
        good(9, "last"),
    ];
    let outcome = f
        .processor
        .process(&raw_event(records))
        .await
        .expect("processed");
    assert!(outcome.failures.is_empty());
    assert_eq!(
        (
            outcome.report.applied,
            outcome.report.dead_lettered,
            outcome.report.unreadable
        ),
        (2, 7, 1)
    );
    assert_eq!(texts(&f.store, 1).await, ["first", "last"]);
    let letters = f.publisher.records();
    let offsets: Vec<i64> = letters
        .iter()
        .map(|l| {
            serde_json::from_slice::<Value>(&l.payload).expect("json")["offset"]
                .as_i64()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(offsets, [1, 2, 3, 4, 5, 6, 7]);
    assert!(letters.iter().all(|l| l.payload.len() < 400 * 1024));
}

#[tokio::test]
async fn a_letter_the_broker_refuses_for_good_is_skipped() {
    let f = fixture();
    f.publisher
        .fail_with(chat_core::publish::PublishError::Rejected(
            "too large".into(),
        ));
    let outcome = f
        .processor
        .process(&event(&[
            (0, 0, Value::String("not json".into())),
            (0, 1, sent(1, 1, "after")),
        ]))
        .await
        .expect("processed");
    assert!(outcome.failures.is_empty());
    assert_eq!(texts(&f.store, 1).await, ["after"]);
}
