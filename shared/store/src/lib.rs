//! `chat-store`: the DynamoDB store, implementing every store port of `chat-core`; one file
//! per concern, the item conversions in [`item`], the tables' shapes (and their creation, for
//! set-up and tests) in [`schema`].
//!
//! Key design (no operation scans a table):
//! - users table: `kind` (S, `user` | `group`) + `id` (N). The directory is small and read as
//!   one Query per kind.
//! - messages table: `group_id` (N) + `message_id` (N): a group's history is one Query in id
//!   order. Index `message_id-index` (hash `message_id`) finds a message by id alone.
//!   Deleted messages stay as tombstones (`deleted = true`, text removed).
//! - connections table: `connection_id` (S); index `group_id-index` (hash `group_id`) lists a
//!   group's connections for fan-out; `expires_at` (N, epoch seconds) is the TTL attribute.
//! - idempotency table: `send_key` (S, `user_id:client_message_id`): a claim, then the message
//!   it produced; expires after a day (TTL `expires_at`).
//! - members table: `group_id` (N) + `user_id` (N), with `role`, `read_mark`, the `version`
//!   (log position) of the last change and `removed`; index `user_id-index` (hash `user_id`)
//!   lists a user's groups.

mod capacity;
mod connections;
mod directory;
mod idempotency;
mod inserts;
mod item;
mod limits;
mod members;
mod messages;
pub mod schema;

use std::fmt::Debug;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::Client;

use chat_core::config::{DynamoConfig, TableNames};
use chat_core::store::StoreError;
use item::Item;
pub use schema::{
    KeyAttribute, TableSpec, GROUP_INDEX, MESSAGE_ID_INDEX, TABLES, TTL_ATTRIBUTE, USER_INDEX,
};

/// A DynamoDB client bounded by `config.timeout`, pointed at `config.endpoint` when set.
pub async fn client(config: &DynamoConfig) -> Client {
    let sdk = chat_aws::sdk_config(&config.region, config.timeout).await;
    let mut builder =
        aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(capacity::RecordCapacity);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    /// The arrival time this process last wrote to each rate-limit bucket (`limits.rs`).
    arrivals: limits::KnownArrivals,
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self {
            client,
            tables,
            arrivals: limits::KnownArrivals::default(),
        }
    }

    pub async fn from_config(config: &DynamoConfig) -> Self {
        Self::new(client(config).await, config.tables.clone())
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// Fails unless DynamoDB answers a cheap request within the configured timeout.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.client
            .list_tables()
            .limit(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("ListTables", e))
    }

    /// Runs a Query to the end (following `LastEvaluatedKey`) and converts every item.
    async fn query_all<T>(
        &self,
        op: &'static str,
        request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        convert: impl Fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = request
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(op, e))?;
            for item in page.items() {
                out.push(convert(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }
}

/// Sorts an SDK error into "retry later" and "will not work".
fn classify<E, R>(op: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: Debug,
{
    const RETRYABLE: &[&str] = &[
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    ];
    let cause = match &err {
        SdkError::ServiceError(e) => format!(
            "{}: {}",
            e.err().code().unwrap_or("unknown error"),
            e.err().message().unwrap_or_default()
        ),
        other => chat_aws::error_chain(other),
    };
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => e.err().code().is_some_and(|c| RETRYABLE.contains(&c)),
        _ => false,
    };
    if retryable {
        StoreError::Unavailable { op, cause }
    } else {
        StoreError::Failed { op, cause }
    }
}
