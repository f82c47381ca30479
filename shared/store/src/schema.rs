//! What the tables look like: the specs a test holds the deployment template to, and (with the
//! `admin` feature, for set-up and tests only) creating them where they are missing.

use chat_core::config::TableNames;

pub const MESSAGE_ID_INDEX: &str = "message_id-index";
pub const GROUP_INDEX: &str = "group_id-index";
pub const USER_INDEX: &str = "user_id-index";
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

pub const TABLES: [TableSpec; 5] = [
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
    TableSpec {
        variable: "MEMBERS_TABLE",
        name: |t| &t.members,
        hash: attr("group_id", "N"),
        range: Some(attr("user_id", "N")),
        index: Some((USER_INDEX, attr("user_id", "N"))),
        ttl: false,
    },
];

mod admin {
    use std::time::Duration;

    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    };

    use super::{KeyAttribute, TableSpec, TABLES, TTL_ATTRIBUTE};
    use crate::{classify, DynamoStore};
    use chat_core::store::StoreError;

    impl DynamoStore {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_specs_name_each_configured_table_once() {
        let names = TableNames {
            users: "u".into(),
            messages: "m".into(),
            connections: "c".into(),
            idempotency: "i".into(),
            members: "g".into(),
        };
        let mut seen: Vec<&str> = TABLES.iter().map(|t| (t.name)(&names).as_str()).collect();
        seen.sort_unstable();
        assert_eq!(seen, ["c", "g", "i", "m", "u"]);
        for spec in TABLES {
            assert!(
                chat_core::config::VARIABLES
                    .iter()
                    .any(|v| v.name == spec.variable),
                "{}",
                spec.variable
            );
        }
    }
}
