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
    /// Global secondary indexes, each with a hash key only, projecting all attributes.
    pub indexes: &'static [(&'static str, KeyAttribute)],
    pub ttl: bool,
    /// Its items live no longer than the sockets of a running gateway: a table an earlier
    /// version made without one of `indexes` is made again (locally), not altered.
    pub transient: bool,
}

const fn attr(name: &'static str, kind: &'static str) -> KeyAttribute {
    KeyAttribute { name, kind }
}

pub const TABLES: [TableSpec; 6] = [
    TableSpec {
        variable: "USERS_TABLE",
        name: |t| &t.users,
        hash: attr("kind", "S"),
        range: Some(attr("id", "N")),
        indexes: &[],
        ttl: false,
        transient: false,
    },
    TableSpec {
        variable: "MESSAGES_TABLE",
        name: |t| &t.messages,
        hash: attr("group_id", "N"),
        range: Some(attr("message_id", "N")),
        indexes: &[(MESSAGE_ID_INDEX, attr("message_id", "N"))],
        ttl: false,
        transient: false,
    },
    TableSpec {
        variable: "CONNECTIONS_TABLE",
        name: |t| &t.connections,
        hash: attr("connection_id", "S"),
        range: None,
        indexes: &[
            (GROUP_INDEX, attr("group_id", "N")),
            (USER_INDEX, attr("user_id", "N")),
        ],
        ttl: true,
        transient: true,
    },
    TableSpec {
        variable: "IDEMPOTENCY_TABLE",
        name: |t| &t.idempotency,
        hash: attr("send_key", "S"),
        range: None,
        indexes: &[],
        ttl: true,
        transient: false,
    },
    TableSpec {
        variable: "MEMBERS_TABLE",
        name: |t| &t.members,
        hash: attr("group_id", "N"),
        range: Some(attr("user_id", "N")),
        indexes: &[(USER_INDEX, attr("user_id", "N"))],
        ttl: false,
        transient: false,
    },
    TableSpec {
        variable: "LIMITS_TABLE",
        name: |t| &t.limits,
        hash: attr("limit_key", "S"),
        range: None,
        indexes: &[],
        ttl: true,
        transient: false,
    },
];

mod admin {
    use std::time::Duration;

    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement,
        KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
        TimeToLiveSpecification,
    };

    use super::{KeyAttribute, TableSpec, TABLES, TTL_ATTRIBUTE};
    use crate::{classify, DynamoStore};
    use chat_core::store::StoreError;

    fn built(op: &'static str, e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
        StoreError::Failed {
            op,
            cause: e.to_string(),
        }
    }

    fn key_schema(attr: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
        KeySchemaElement::builder()
            .attribute_name(attr)
            .key_type(kind)
            .build()
            .map_err(|e| built("CreateTable", e))
    }

    fn attribute_definition(attr: KeyAttribute) -> Result<AttributeDefinition, StoreError> {
        AttributeDefinition::builder()
            .attribute_name(attr.name)
            .attribute_type(ScalarAttributeType::from(attr.kind))
            .build()
            .map_err(|e| built("CreateTable", e))
    }

    /// Every index projects all attributes: the store reads whole items through them.
    fn projection_all() -> Projection {
        Projection::builder()
            .projection_type(ProjectionType::All)
            .build()
    }

    fn gsi(name: &str, attr: KeyAttribute) -> Result<GlobalSecondaryIndex, StoreError> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key_schema(attr.name, KeyType::Hash)?)
            .projection(projection_all())
            .build()
            .map_err(|e| built("CreateTable", e))
    }

    impl DynamoStore {
        /// Creates the tables and their indexes where missing (on-demand billing), waits
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
            let mut request = self
                .client
                .create_table()
                .table_name(name)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key_schema(spec.hash.name, KeyType::Hash)?)
                .attribute_definitions(attribute_definition(spec.hash)?);
            if let Some(range) = spec.range {
                request = request
                    .key_schema(key_schema(range.name, KeyType::Range)?)
                    .attribute_definitions(attribute_definition(range)?);
            }
            for &(index_name, attr) in spec.indexes {
                request = request.global_secondary_indexes(gsi(index_name, attr)?);
                // An index key that is also a key of the table or of another index is defined
                // once.
                if spec.range != Some(attr) && spec.hash != attr {
                    request = request.attribute_definitions(attribute_definition(attr)?);
                }
            }
            match request.clone().send().await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ResourceInUseException") => {
                    let missing = self.missing_indexes(name, spec).await?;
                    if missing.is_empty() {
                        return Ok(());
                    }
                    if !spec.transient {
                        return Err(StoreError::Failed {
                            op: OP,
                            cause: format!(
                                "table {name} was made by an earlier version and lacks the \
                                 index {}: start from a fresh data folder",
                                missing.join(", ")
                            ),
                        });
                    }
                    // Its items die with the sockets of the gateway that ran before: made
                    // again rather than altered (DynamoDB Local may leave an index added to a
                    // table in CREATING for good).
                    tracing::info!(
                        table = name,
                        ?missing,
                        "making a table of an earlier version again"
                    );
                    self.delete_table(name).await?;
                    request.send().await.map_err(|e| classify(OP, e))?;
                    Ok(())
                }
                Err(e) => Err(classify(OP, e)),
            }
        }

        /// The indexes of `spec` that the table made by an earlier version lacks.
        async fn missing_indexes(
            &self,
            name: &str,
            spec: &TableSpec,
        ) -> Result<Vec<&'static str>, StoreError> {
            let described = self
                .client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| classify("DescribeTable", e))?;
            let present: Vec<&str> = described
                .table()
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .filter_map(|i| i.index_name())
                .collect();
            Ok(spec
                .indexes
                .iter()
                .map(|(index, _)| *index)
                .filter(|index| !present.contains(index))
                .collect())
        }

        async fn delete_table(&self, name: &str) -> Result<(), StoreError> {
            self.client
                .delete_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| classify("DeleteTable", e))?;
            for _ in 0..120 {
                match self.client.describe_table().table_name(name).send().await {
                    Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(()),
                    Err(e) => return Err(classify("DescribeTable", e)),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            Err(StoreError::Unavailable {
                op: "DeleteTable",
                cause: format!("table {name} was not deleted within a minute"),
            })
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
                let active = described.table().is_some_and(|t| {
                    t.table_status() == Some(&TableStatus::Active)
                        && t.global_secondary_indexes()
                            .iter()
                            .all(|i| i.index_status() == Some(&IndexStatus::Active))
                });
                if active {
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
            limits: "l".into(),
        };
        let mut seen: Vec<&str> = TABLES.iter().map(|t| (t.name)(&names).as_str()).collect();
        seen.sort_unstable();
        assert_eq!(seen, ["c", "g", "i", "l", "m", "u"]);
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
