//! WebSocket connections, listed per group through the group index for fan-out.

use async_trait::async_trait;
use chrono::Utc;

use crate::item::{connection_from_item, n, s};
use crate::{classify, DynamoStore, GROUP_INDEX};
use chat_core::domain::{Connection, GroupId};
use chat_core::store::{ConnectionReader, ConnectionWriter, StoreError};

#[async_trait]
impl ConnectionReader for DynamoStore {
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

#[async_trait]
impl ConnectionWriter for DynamoStore {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.connections)
            .item("connection_id", s(&connection.connection_id))
            .item("group_id", n(connection.group_id))
            .item("connected_at", s(connection.connected_at.to_rfc3339()))
            .item("expires_at", n(connection.expires_at.timestamp()));
        if let Some(user_id) = connection.user_id {
            put = put.item("user_id", n(user_id));
        }
        put.send().await.map_err(|e| classify("PutItem", e))?;
        Ok(())
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
}
