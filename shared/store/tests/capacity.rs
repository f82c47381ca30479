//! Every call of the store's client records the capacity DynamoDB says it consumed (DynamoDB
//! Local of `make test` answers `ReturnConsumedCapacity` as DynamoDB does): reads and writes
//! apart, one value per call, and a write refused by its condition as the one unit it is
//! billed.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::usage::{DYNAMODB_READ_UNITS, DYNAMODB_WRITE_UNITS};
use chat_store::DynamoStore;
use chat_testkit::services::{config, with_own_tables};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// The values recorded into histograms, by name.
#[derive(Default, Clone)]
struct Values(Arc<Mutex<Vec<(String, f64)>>>);

struct Named(String, Values);

impl HistogramFn for Named {
    fn record(&self, value: f64) {
        let Named(name, values) = self;
        values.0.lock().expect("lock").push((name.clone(), value));
    }
}

impl Recorder for Values {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Named(key.name().to_owned(), self.clone())))
    }
}

#[test]
fn every_call_records_the_capacity_it_consumed() {
    let values = Values::default();
    // A runtime on this thread, so that the interceptor records into this thread's recorder.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&values, || {
        runtime.block_on(async {
            let config = with_own_tables(config());
            let store = DynamoStore::from_config(&config.dynamodb).await;
            store
                .ensure_tables()
                .await
                .expect("tables (is DynamoDB Local running? `make services`)");
            values.0.lock().expect("lock").clear();
            let client = chat_store::client(&config.dynamodb).await;
            let table = &config.dynamodb.tables.users;
            let key = [
                ("kind", AttributeValue::S("user".into())),
                ("id", AttributeValue::N("7".into())),
            ];
            let mut put = client.put_item().table_name(table);
            for (name, value) in key.clone() {
                put = put.item(name, value);
            }
            put.item("name", AttributeValue::S("Ada".into()))
                .send()
                .await
                .expect("put");
            let mut get = client.get_item().table_name(table).consistent_read(true);
            for (name, value) in key {
                get = get.key(name, value);
            }
            get.send().await.expect("get");
            // A put refused by its condition reports no capacity, but DynamoDB bills it.
            let mut again = client
                .put_item()
                .table_name(table)
                .condition_expression("attribute_not_exists(id)");
            for (name, value) in [
                ("kind", AttributeValue::S("user".into())),
                ("id", AttributeValue::N("7".into())),
            ] {
                again = again.item(name, value);
            }
            assert!(again.send().await.is_err(), "the condition fails");
        })
    });
    let recorded = values.0.lock().expect("lock").clone();
    assert_eq!(
        recorded,
        vec![
            (DYNAMODB_WRITE_UNITS.to_owned(), 1.0),
            (DYNAMODB_READ_UNITS.to_owned(), 1.0),
            (DYNAMODB_WRITE_UNITS.to_owned(), 1.0)
        ],
        "a small put is 1 write unit, a strongly consistent get 1 read unit, a refused put 1 \
         write unit"
    );
}

/// The write units of `work`, run on this thread.
fn write_units(work: impl std::future::Future<Output = ()>) -> usize {
    let values = Values::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&values, || runtime.block_on(work));
    let recorded = values.0.lock().expect("lock").clone();
    recorded
        .iter()
        .filter(|(name, _)| name == DYNAMODB_WRITE_UNITS)
        .count()
}

#[test]
fn a_bucket_known_in_use_is_not_asked_the_idle_write_it_would_refuse() {
    use chat_core::limits::Limit;
    use chat_core::store::RateLimiter;
    let config = with_own_tables(config());
    let limit = Limit {
        burst: 10,
        interval: std::time::Duration::from_millis(1000),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let setup = tokio::runtime::Runtime::new().expect("runtime");
    let store = setup.block_on(async {
        let store = DynamoStore::from_config(&config.dynamodb).await;
        store
            .ensure_tables()
            .await
            .expect("tables (is DynamoDB Local running? `make services`)");
        store
    });
    let three = write_units(async {
        for _ in 0..3 {
            assert!(store.take("send#9", limit, now).await.expect("take"));
        }
    });
    assert_eq!(
        three, 3,
        "idle once, then straight to in use: one write each"
    );
    // Another process knows nothing of the bucket: its "idle" write is refused (and billed).
    let other = setup.block_on(DynamoStore::from_config(&config.dynamodb));
    let cold = write_units(async {
        assert!(other.take("send#9", limit, now).await.expect("take"));
    });
    assert_eq!(cold, 2);
}
