//! The DynamoDB store, with the item conversions next to it.
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

use std::collections::HashMap;
use std::fmt::Debug;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use super::{
    Cursor, DeleteOutcome, EditOutcome, MessageEdit, Page, PageRequest, SendClaim, SendKey, Store,
    StoreError, StoredMessage, MAX_PAGE_SIZE,
};
use crate::config::{DynamoConfig, TableNames};
use crate::domain::{Connection, Group, GroupId, Message, MessageId, MessageText, User, UserId};

pub const MESSAGE_ID_INDEX: &str = "message_id-index";
pub const GROUP_INDEX: &str = "group_id-index";
/// Epoch seconds after which DynamoDB's TTL removes an item.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A key attribute: its name and DynamoDB scalar type (`S` or `N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttribute {
    pub name: &'static str,
    pub kind: &'static str,
}

/// What a table must look like. `ensure_tables` creates tables from these locally, and a
/// test holds the deployment template to them.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// The variable that names the table (`Config` reads it).
    pub variable: &'static str,
    pub name: fn(&TableNames) -> &String,
    pub hash: KeyAttribute,
    pub range: Option<KeyAttribute>,
    /// A global secondary index with a hash key only, projecting all attributes.
    pub index: Option<(&'static str, KeyAttribute)>,
    pub ttl: bool,
}

const fn attr(name: &'static str, kind: &'static str) -> KeyAttribute {
    KeyAttribute { name, kind }
}

pub const TABLES: [TableSpec; 4] = [
    TableSpec {
        variable: "USERS_TABLE",
        name: |t| &t.users,
        hash: attr("kind", "S"),
        range: Some(attr("id", "N")),
        index: None,
        ttl: false,
    },
    TableSpec {
        variable: "MESSAGES_TABLE",
        name: |t| &t.messages,
        hash: attr("group_id", "N"),
        range: Some(attr("message_id", "N")),
        index: Some((MESSAGE_ID_INDEX, attr("message_id", "N"))),
        ttl: false,
    },
    TableSpec {
        variable: "CONNECTIONS_TABLE",
        name: |t| &t.connections,
        hash: attr("connection_id", "S"),
        range: None,
        index: Some((GROUP_INDEX, attr("group_id", "N"))),
        ttl: true,
    },
    TableSpec {
        variable: "IDEMPOTENCY_TABLE",
        name: |t| &t.idempotency,
        hash: attr("send_key", "S"),
        range: None,
        index: None,
        ttl: true,
    },
];

type Item = HashMap<String, AttributeValue>;

/// A DynamoDB client bounded by `config.timeout`, pointed at `config.endpoint` when set.
pub async fn client(config: &DynamoConfig) -> Client {
    let sdk = crate::aws::sdk_config(&config.region, config.timeout).await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
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

    /// Creates the three tables and their indexes where missing (on-demand billing), waits
    /// until they are active and turns on TTL for connections. Safe to run again.
    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        for spec in &TABLES {
            self.create_table((spec.name)(&self.tables), spec).await?;
        }
        for spec in &TABLES {
            self.wait_active((spec.name)(&self.tables)).await?;
        }
        for spec in TABLES.iter().filter(|spec| spec.ttl) {
            self.enable_ttl((spec.name)(&self.tables)).await?;
        }
        Ok(())
    }

    async fn create_table(&self, name: &str, spec: &TableSpec) -> Result<(), StoreError> {
        const OP: &str = "CreateTable";
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Failed {
            op: OP,
            cause: e.to_string(),
        };
        let key = |attr: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(attr)
                .key_type(kind)
                .build()
                .map_err(built)
        };
        let definition = |attr: KeyAttribute| {
            AttributeDefinition::builder()
                .attribute_name(attr.name)
                .attribute_type(ScalarAttributeType::from(attr.kind))
                .build()
                .map_err(built)
        };
        let mut request = self
            .client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(spec.hash.name, KeyType::Hash)?)
            .attribute_definitions(definition(spec.hash)?);
        if let Some(range) = spec.range {
            request = request
                .key_schema(key(range.name, KeyType::Range)?)
                .attribute_definitions(definition(range)?);
        }
        if let Some((index_name, attr)) = spec.index {
            let gsi = GlobalSecondaryIndex::builder()
                .index_name(index_name)
                .key_schema(key(attr.name, KeyType::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(built)?;
            request = request.global_secondary_indexes(gsi);
            // An index key that is also the table's range key is defined once.
            if spec.range != Some(attr) {
                request = request.attribute_definitions(definition(attr)?);
            }
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(classify(OP, e)),
        }
    }

    async fn wait_active(&self, table: &str) -> Result<(), StoreError> {
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| classify("DescribeTable", e))?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable {
            op: "DescribeTable",
            cause: format!("table {table} did not become active within a minute"),
        })
    }

    /// Expires items by their `expires_at` (epoch seconds).
    async fn enable_ttl(&self, table: &str) -> Result<(), StoreError> {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(|e| StoreError::Failed {
                op: "UpdateTimeToLive",
                cause: e.to_string(),
            })?;
        match self
            .client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already enabled: the call is not idempotent, the state is.
            Err(e) if e.code() == Some("ValidationException") => Ok(()),
            Err(e) => Err(classify("UpdateTimeToLive", e)),
        }
    }

    /// One BatchWriteItem of up to 25 puts, resending what DynamoDB leaves unprocessed.
    async fn write_batch(&self, writes: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut request = Some(HashMap::from([(self.tables.messages.clone(), writes)]));
        let mut attempt = 0;
        while let Some(items) = request.take().filter(|r| !r.is_empty()) {
            let out = self
                .client
                .batch_write_item()
                .set_request_items(Some(items))
                .send()
                .await
                .map_err(|e| classify("BatchWriteItem", e))?;
            request = out.unprocessed_items().cloned();
            attempt += 1;
            let more = request.as_ref().is_some_and(|r| !r.is_empty());
            backoff("BatchWriteItem", attempt, more).await?;
        }
        Ok(())
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

const USER: &str = "user";
const GROUP: &str = "group";

#[async_trait]
impl Store for DynamoStore {
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.users)
            .set_item(Some(user_to_item(user)))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key("kind", s(USER))
            .key("id", n(id))
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item().map(user_from_item).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.tables.users)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", "kind")
            .expression_attribute_values(":k", s(USER));
        self.query_all("Query", request, user_from_item).await
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.users)
            .item("kind", s(GROUP))
            .item("id", n(group.group_id))
            .item("name", s(&group.name))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn get_group(&self, id: GroupId) -> Result<Option<Group>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key("kind", s(GROUP))
            .key("id", n(id))
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item()
            .map(|item| {
                Ok(Group {
                    group_id: get_id(item, "id")?,
                    name: get_s(item, "name")?.to_owned(),
                })
            })
            .transpose()
    }

    async fn insert_message(&self, message: &Message) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.messages)
            .set_item(Some(message_to_item(message)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", "message_id")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(classify("PutItem", e)),
        }
    }

    async fn insert_messages(
        &self,
        messages: &[Message],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        let table = &self.tables.messages;
        let key_of = |group: u64, id: u64| (group, id);
        // Which ids exist already: BatchGetItem, 100 keys a request.
        let mut existing: HashMap<(u64, u64), StoredMessage> = HashMap::new();
        let mut unique: Vec<&Message> = Vec::with_capacity(messages.len());
        for m in messages {
            if !unique.iter().any(|u| u.id == m.id) {
                unique.push(m);
            }
        }
        for chunk in unique.chunks(100) {
            let mut keys = KeysAndAttributes::builder();
            for m in chunk {
                keys = keys.keys(HashMap::from([
                    ("group_id".to_owned(), n(m.group_id)),
                    ("message_id".to_owned(), n(m.id)),
                ]));
            }
            let mut request = Some(HashMap::from([(
                table.clone(),
                keys.consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Failed {
                        op: "BatchGetItem",
                        cause: e.to_string(),
                    })?,
            )]));
            let mut attempt = 0;
            while let Some(items) = request.take().filter(|r| !r.is_empty()) {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| classify("BatchGetItem", e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(table))
                    .into_iter()
                    .flatten()
                {
                    let stored = stored_message_from_item(item)?;
                    let group = get_n::<u64>(item, "group_id")?;
                    existing.insert(key_of(group, stored.id().get()), stored);
                }
                request = out.unprocessed_keys().cloned();
                attempt += 1;
                backoff(
                    "BatchGetItem",
                    attempt,
                    request.as_ref().is_some_and(|r| !r.is_empty()),
                )
                .await?;
            }
        }
        // Write the new ones: BatchWriteItem, 25 items a request.
        let fresh: Vec<&Message> = unique
            .iter()
            .copied()
            .filter(|m| !existing.contains_key(&key_of(m.group_id.get(), m.id.get())))
            .collect();
        // Chunks go out together: DynamoDB takes them in parallel.
        let writes = fresh
            .chunks(25)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|m| {
                        let put = PutRequest::builder()
                            .set_item(Some(message_to_item(m)))
                            .build()
                            .map_err(|e| StoreError::Failed {
                                op: "BatchWriteItem",
                                cause: e.to_string(),
                            })?;
                        Ok(WriteRequest::builder().put_request(put).build())
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        futures_util::future::try_join_all(writes.into_iter().map(|w| self.write_batch(w))).await?;
        Ok(messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let repeat = messages.iter().position(|other| other.id == m.id) != Some(i);
                match existing.get(&key_of(m.group_id.get(), m.id.get())) {
                    Some(stored) => Some(stored.clone()),
                    // A repeat of an id earlier in this call: the first one stored it.
                    None if repeat => Some(StoredMessage::Live(m.clone())),
                    None => None,
                }
            })
            .collect())
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.messages)
            .index_name(MESSAGE_ID_INDEX)
            .key_condition_expression("#id = :id")
            .expression_attribute_names("#id", "message_id")
            .expression_attribute_values(":id", n(id))
            .limit(1)
            .send()
            .await
            .map_err(|e| classify("Query", e))?;
        out.items()
            .first()
            .map(stored_message_from_item)
            .transpose()
    }

    async fn list_messages(&self, group: GroupId, page: PageRequest) -> Result<Page, StoreError> {
        let limit = page.limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let (condition, forward, bound) = match page.cursor {
            Cursor::Latest => ("#g = :g", false, None),
            Cursor::Before(id) => ("#g = :g AND #id < :bound", false, Some(id)),
            Cursor::After(id) => ("#g = :g AND #id > :bound", true, Some(id)),
        };
        let mut request = self
            .client
            .query()
            .table_name(&self.tables.messages)
            .key_condition_expression(condition)
            .filter_expression("#d = :false")
            .expression_attribute_names("#g", "group_id")
            .expression_attribute_names("#d", "deleted")
            .expression_attribute_values(":g", n(group))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .scan_index_forward(forward);
        if let Some(bound) = bound {
            request = request
                .expression_attribute_names("#id", "message_id")
                .expression_attribute_values(":bound", n(bound));
        }
        // One more than asked tells whether more lie beyond; tombstones are filtered after
        // DynamoDB's Limit, so keep reading until enough live messages or the end.
        let mut messages = Vec::with_capacity(limit + 1);
        let mut start: Option<Item> = None;
        loop {
            let want = (limit + 1 - messages.len()) as i32;
            let out = request
                .clone()
                .limit(want)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for item in out.items() {
                match stored_message_from_item(item)? {
                    StoredMessage::Live(m) => messages.push(m),
                    StoredMessage::Deleted { .. } => {}
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() && messages.len() <= limit => {
                    start = Some(key.clone())
                }
                _ => break,
            }
        }
        let more = messages.len() > limit;
        messages.truncate(limit);
        if !forward {
            messages.reverse();
        }
        Ok(Page { messages, more })
    }

    async fn edit_message(&self, edit: &MessageEdit) -> Result<EditOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.messages)
            .key("group_id", n(edit.group_id))
            .key("message_id", n(edit.message_id))
            .update_expression("SET #m = :text, #at = :at, #v = :v")
            .condition_expression(
                "attribute_exists(#id) AND #d = :false AND (attribute_not_exists(#v) OR #v < :v)",
            )
            .expression_attribute_names("#m", "message")
            .expression_attribute_names("#at", "edited_at")
            .expression_attribute_names("#v", "edit_version")
            .expression_attribute_names("#id", "message_id")
            .expression_attribute_names("#d", "deleted")
            .expression_attribute_values(":text", s(edit.new_text.as_str()))
            .expression_attribute_values(":at", s(edit.edited_at.to_rfc3339()))
            .expression_attribute_values(":v", n(edit.version))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes().map(stored_message_from_item).transpose()? {
                Some(StoredMessage::Live(message)) => Ok(EditOutcome::Applied(message)),
                _ => Err(StoreError::Corrupt("edit returned no live message".into())),
            },
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let old = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                Ok(
                    match old.as_ref().map(stored_message_from_item).transpose()? {
                        None => EditOutcome::NotFound,
                        Some(StoredMessage::Deleted { .. }) => EditOutcome::Deleted,
                        Some(StoredMessage::Live(_)) => EditOutcome::AlreadyApplied,
                    },
                )
            }
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }

    async fn delete_message(
        &self,
        group: GroupId,
        id: MessageId,
        deleted_at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.messages)
            .key("group_id", n(group))
            .key("message_id", n(id))
            .update_expression("SET #d = :true, #at = :at REMOVE #m")
            .condition_expression("attribute_exists(#id) AND #d = :false")
            .expression_attribute_names("#d", "deleted")
            .expression_attribute_names("#at", "deleted_at")
            .expression_attribute_names("#m", "message")
            .expression_attribute_names("#id", "message_id")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":at", s(deleted_at.to_rfc3339()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let existed = matches!(
                    e.into_service_error(),
                    UpdateItemError::ConditionalCheckFailedException(c) if c.item.is_some()
                );
                Ok(if existed {
                    DeleteOutcome::AlreadyDeleted
                } else {
                    DeleteOutcome::NotFound
                })
            }
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }

    async fn claim_send(
        &self,
        key: &SendKey,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<SendClaim, StoreError> {
        let now_ms = now.timestamp_millis();
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("send_key", s(key.as_string()))
            .item("claimed_at", n(now_ms))
            .item(
                "expires_at",
                n((now + chrono::Duration::days(1)).timestamp()),
            )
            .condition_expression("attribute_not_exists(send_key)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(SendClaim::Claimed),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item.unwrap_or_default(),
                    _ => Item::new(),
                }
            }
            Err(e) => return Err(classify("PutItem", e)),
        };
        if old.contains_key("message_id") {
            return Ok(SendClaim::Done {
                group_id: get_id(&old, "group_id")?,
                message_id: get_id(&old, "message_id")?,
            });
        }
        let claimed_at: i64 = get_n(&old, "claimed_at")?;
        if claimed_at > now_ms - lease.num_milliseconds() {
            return Ok(SendClaim::InProgress);
        }
        // The earlier claim's holder is gone (its lease ran out): take the claim over, unless
        // somebody else just did.
        let takeover = self
            .client
            .update_item()
            .table_name(&self.tables.idempotency)
            .key("send_key", s(key.as_string()))
            .update_expression("SET claimed_at = :now")
            .condition_expression("claimed_at = :old AND attribute_not_exists(message_id)")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":old", n(claimed_at))
            .send()
            .await;
        match takeover {
            Ok(_) => Ok(SendClaim::Claimed),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Ok(SendClaim::InProgress)
            }
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }

    async fn complete_send(
        &self,
        key: &SendKey,
        group_id: GroupId,
        message_id: MessageId,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.tables.idempotency)
            .key("send_key", s(key.as_string()))
            .update_expression("SET group_id = :g, message_id = :m")
            .expression_attribute_values(":g", n(group_id))
            .expression_attribute_values(":m", n(message_id))
            .send()
            .await
            .map_err(|e| classify("UpdateItem", e))?;
        Ok(())
    }

    async fn release_send(&self, key: &SendKey) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.idempotency)
            .key("send_key", s(key.as_string()))
            .condition_expression("attribute_not_exists(message_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(classify("DeleteItem", e)),
        }
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .item("connection_id", s(&connection.connection_id))
            .item("group_id", n(connection.group_id))
            .item("connected_at", s(connection.connected_at.to_rfc3339()))
            .item("expires_at", n(connection.expires_at.timestamp()))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn get_connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection_id))
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item().map(connection_from_item).transpose()
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection_id))
            .send()
            .await
            .map_err(|e| classify("DeleteItem", e))?;
        Ok(())
    }

    async fn connections_for_group(&self, group: GroupId) -> Result<Vec<Connection>, StoreError> {
        // TTL deletion lags expiry (by up to days on AWS), so expired rows are filtered here.
        let request = self
            .client
            .query()
            .table_name(&self.tables.connections)
            .index_name(GROUP_INDEX)
            .key_condition_expression("#g = :g")
            .filter_expression("#e > :now")
            .expression_attribute_names("#g", "group_id")
            .expression_attribute_names("#e", "expires_at")
            .expression_attribute_values(":g", n(group))
            .expression_attribute_values(":now", n(Utc::now().timestamp()));
        self.query_all("Query", request, connection_from_item).await
    }
}

/// Waits before resending what a batch call left unprocessed (throttling); gives up after a
/// few rounds so that a call stays bounded.
async fn backoff(op: &'static str, attempt: u32, more: bool) -> Result<(), StoreError> {
    if !more {
        return Ok(());
    }
    if attempt >= 6 {
        return Err(StoreError::Unavailable {
            op,
            cause: "items left unprocessed after 6 attempts".into(),
        });
    }
    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
    Ok(())
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
        other => crate::aws::error_chain(other),
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

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn corrupt(name: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute `{name}` {what}"))
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(corrupt(name, "is not a string")),
        None => Err(corrupt(name, "is missing")),
    }
}

fn get_n<T: FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(name, "is out of range")),
        Some(_) => Err(corrupt(name, "is not a number")),
        None => Err(corrupt(name, "is missing")),
    }
}

fn get_id<T: TryFrom<i128>>(item: &Item, name: &str) -> Result<T, StoreError> {
    T::try_from(get_n::<i128>(item, name)?).map_err(|_| corrupt(name, "is not a valid id"))
}

fn get_bool(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        Some(AttributeValue::Bool(v)) => Ok(*v),
        Some(_) => Err(corrupt(name, "is not a boolean")),
        None => Err(corrupt(name, "is missing")),
    }
}

fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(get_s(item, name)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt(name, "is not an RFC 3339 time"))
}

fn user_to_item(user: &User) -> Item {
    HashMap::from([
        ("kind".to_owned(), s(USER)),
        ("id".to_owned(), n(user.user_id)),
        ("name".to_owned(), s(&user.name)),
        ("group_id".to_owned(), n(user.group_id)),
        ("can_edit".to_owned(), AttributeValue::Bool(user.can_edit)),
        (
            "can_delete".to_owned(),
            AttributeValue::Bool(user.can_delete),
        ),
    ])
}

fn user_from_item(item: &Item) -> Result<User, StoreError> {
    Ok(User {
        user_id: get_id(item, "id")?,
        name: get_s(item, "name")?.to_owned(),
        group_id: get_id(item, "group_id")?,
        can_edit: get_bool(item, "can_edit")?,
        can_delete: get_bool(item, "can_delete")?,
    })
}

fn message_to_item(m: &Message) -> Item {
    let mut item = HashMap::from([
        ("group_id".to_owned(), n(m.group_id)),
        ("message_id".to_owned(), n(m.id)),
        ("user_id".to_owned(), n(m.user_id)),
        ("name".to_owned(), s(&m.name)),
        ("message".to_owned(), s(m.message.as_str())),
        ("can_edit".to_owned(), AttributeValue::Bool(m.can_edit)),
        ("can_delete".to_owned(), AttributeValue::Bool(m.can_delete)),
        ("created_at".to_owned(), s(m.created_at.to_rfc3339())),
        ("deleted".to_owned(), AttributeValue::Bool(false)),
    ]);
    if let Some(edited_at) = m.edited_at {
        item.insert("edited_at".to_owned(), s(edited_at.to_rfc3339()));
    }
    item
}

fn stored_message_from_item(item: &Item) -> Result<StoredMessage, StoreError> {
    let id: MessageId = get_id(item, "message_id")?;
    let group_id: GroupId = get_id(item, "group_id")?;
    let user_id: UserId = get_id(item, "user_id")?;
    if get_bool(item, "deleted")? {
        return Ok(StoredMessage::Deleted {
            id,
            group_id,
            user_id,
        });
    }
    let text = MessageText::new(get_s(item, "message")?)
        .map_err(|e| StoreError::Corrupt(format!("message {id}: {e}")))?;
    Ok(StoredMessage::Live(Message {
        id,
        user_id,
        name: get_s(item, "name")?.to_owned(),
        group_id,
        message: text,
        can_edit: get_bool(item, "can_edit")?,
        can_delete: get_bool(item, "can_delete")?,
        created_at: get_time(item, "created_at")?,
        edited_at: item
            .contains_key("edited_at")
            .then(|| get_time(item, "edited_at"))
            .transpose()?,
    }))
}

fn connection_from_item(item: &Item) -> Result<Connection, StoreError> {
    let expires_at: i64 = get_n(item, "expires_at")?;
    Ok(Connection {
        connection_id: get_s(item, "connection_id")?.to_owned(),
        group_id: get_id(item, "group_id")?,
        connected_at: get_time(item, "connected_at")?,
        expires_at: DateTime::from_timestamp(expires_at, 0)
            .ok_or_else(|| corrupt("expires_at", "is out of range"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::seed_users;

    #[test]
    fn the_table_specs_name_each_configured_table_once() {
        let names = TableNames {
            users: "u".into(),
            messages: "m".into(),
            connections: "c".into(),
            idempotency: "i".into(),
        };
        let mut seen: Vec<&str> = TABLES.iter().map(|t| (t.name)(&names).as_str()).collect();
        seen.sort_unstable();
        assert_eq!(seen, ["c", "i", "m", "u"]);
        for spec in TABLES {
            assert!(
                crate::config::VARIABLES
                    .iter()
                    .any(|v| v.name == spec.variable),
                "{}",
                spec.variable
            );
        }
    }

    #[test]
    fn users_round_trip_through_items() {
        for user in seed_users() {
            assert_eq!(user_from_item(&user_to_item(&user)), Ok(user));
        }
    }

    #[test]
    fn a_malformed_item_is_reported_not_panicked_on() {
        let mut item = user_to_item(&seed_users()[0]);
        item.insert("id".into(), n(0));
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
        item.insert("id".into(), s("1"));
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
        item.remove("id");
        assert!(matches!(user_from_item(&item), Err(StoreError::Corrupt(_))));
    }
}
