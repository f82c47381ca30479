//! WebSocket connections, listed per group through the group index for fan-out, and per user
//! through the user index for the sockets that follow all their user's groups.
//!
//! A socket opened on one group is one item, keyed by its connection id. An all-groups socket
//! is one item of its own (its user, no group: it is in no group's listing) and one
//! subscription item per group, keyed `{connection id}#{group}`, which the group index lists
//! like any other socket of the group.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::item::{
    all_groups_socket_from_item, all_groups_socket_to_item, connection_from_item,
    connection_to_item, is_all_groups_socket, n, s, subscription_key, Item,
};
use crate::{classify, DynamoStore, GROUP_INDEX, USER_INDEX};
use chat_core::domain::{
    AllGroupsSocket, Connection, GroupId, SocketSlot, UserId, MAX_SOCKET_SECONDS,
};
use chat_core::store::{ConnectionReader, ConnectionWriter, StoreError};

/// Subscription items written or deleted at once.
const WRITE_CONCURRENCY: usize = 16;

/// The item counting a user's sockets on a group: a string set of `{millis}#{connection id}`,
/// so that one `ADD` counts a socket atomically and returns them all. Neither `group_id` nor
/// `user_id` is set, so no index lists it; TTL removes it once its sockets are all gone.
fn slots_key(user: UserId, group: GroupId) -> String {
    format!("slots#{user}#{group}")
}

fn slot_entry(slot: &SocketSlot) -> String {
    format!(
        "{:013}#{}",
        slot.connected_at.timestamp_millis(),
        slot.connection_id
    )
}

fn slot_from_entry(entry: &str) -> Option<SocketSlot> {
    let (millis, id) = entry.split_once('#')?;
    Some(SocketSlot {
        connection_id: id.to_owned(),
        connected_at: chrono::DateTime::from_timestamp_millis(millis.parse().ok()?)?,
    })
}

impl DynamoStore {
    async fn connection_item(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item().cloned())
    }

    async fn put_connection_item(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn delete_connection_item(&self, key: String) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(key))
            .send()
            .await
            .map_err(|e| classify("DeleteItem", e))?;
        Ok(())
    }

    /// The user's unexpired items matching `filter` (over `#e` expiry, `:now` and `values`),
    /// through the user index.
    async fn user_connection_items<T>(
        &self,
        user: UserId,
        filter: &str,
        values: &[(&str, AttributeValue)],
        convert: impl Fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.tables.connections)
            .index_name(USER_INDEX)
            .key_condition_expression("#u = :u")
            .filter_expression(format!("#e > :now AND {filter}"))
            .expression_attribute_names("#u", "user_id")
            .expression_attribute_names("#e", "expires_at")
            .expression_attribute_values(":u", n(user))
            .expression_attribute_values(":now", n(Utc::now().timestamp()));
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        if filter.contains("#a") {
            request = request.expression_attribute_names("#a", "all_groups");
        }
        if filter.contains("#s") {
            request = request.expression_attribute_names("#s", "socket");
        }
        self.query_all("Query", request, convert).await
    }

    /// Uncounts sockets from their users' sockets on their groups.
    async fn uncount(&self, connections: &[Connection]) -> Result<(), StoreError> {
        // Owned pairs: a borrowed one trips the compiler's higher-ranked check in async traits.
        let pairs: Vec<(String, String)> = connections
            .iter()
            .filter_map(|c| Some((slots_key(c.user_id?, c.group_id), slot_entry(&c.slot()))))
            .collect();
        stream::iter(pairs)
            .map(|(key, entry)| self.remove_slots(key, vec![entry]))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Removes entries from a count item, if there is one: an update of a missing item would
    /// make one, without its TTL (a socket counted before counts existed, or after the item
    /// expired).
    async fn remove_slots(&self, key: String, entries: Vec<String>) -> Result<(), StoreError> {
        let removed = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(key))
            .update_expression("DELETE #s :gone")
            .condition_expression("attribute_exists(#s)")
            .expression_attribute_names("#s", "sockets")
            .expression_attribute_values(":gone", AttributeValue::Ss(entries))
            .send()
            .await;
        match removed {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }

    async fn put_subscriptions(&self, subscriptions: &[Connection]) -> Result<(), StoreError> {
        // Owned items: a borrowed one trips the compiler's higher-ranked check in async traits.
        let items: Vec<Item> = subscriptions.iter().map(connection_to_item).collect();
        stream::iter(items)
            .map(|item| self.put_connection_item(item))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ConnectionReader for DynamoStore {
    async fn get_connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        match self.connection_item(connection_id).await? {
            Some(item) if !is_all_groups_socket(&item) => connection_from_item(&item).map(Some),
            _ => Ok(None),
        }
    }

    async fn socket_exists(&self, connection_id: &str) -> Result<bool, StoreError> {
        Ok(self.connection_item(connection_id).await?.is_some())
    }

    async fn subscription(
        &self,
        connection_id: &str,
        group: GroupId,
    ) -> Result<Option<Connection>, StoreError> {
        let Some(item) = self.connection_item(connection_id).await? else {
            return Ok(None);
        };
        if !is_all_groups_socket(&item) {
            let connection = connection_from_item(&item)?;
            return Ok((connection.group_id == group).then_some(connection));
        }
        self.connection_item(&subscription_key(connection_id, group))
            .await?
            .map(|item| connection_from_item(&item))
            .transpose()
    }

    async fn group_subscriptions(&self, group: GroupId) -> Result<Vec<Connection>, StoreError> {
        // Expired items included: a filter would cost the same reads, and the stream
        // processor closes them.
        let request = self
            .client
            .query()
            .table_name(&self.tables.connections)
            .index_name(GROUP_INDEX)
            .key_condition_expression("#g = :g")
            .expression_attribute_names("#g", "group_id")
            .expression_attribute_values(":g", n(group));
        self.query_all("Query", request, connection_from_item).await
    }
}

#[async_trait]
impl ConnectionWriter for DynamoStore {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.put_connection_item(connection_to_item(connection))
            .await
    }

    async fn put_all_groups_socket(
        &self,
        socket: &AllGroupsSocket,
        groups: &[GroupId],
    ) -> Result<(), StoreError> {
        // The socket first: a join applied meanwhile finds it and subscribes it too.
        self.put_connection_item(all_groups_socket_to_item(socket))
            .await?;
        let subscriptions: Vec<Connection> =
            groups.iter().map(|g| socket.subscription(*g)).collect();
        self.put_subscriptions(&subscriptions).await
    }

    async fn follow_group(
        &self,
        user: UserId,
        group: GroupId,
    ) -> Result<Vec<Connection>, StoreError> {
        let sockets = self
            .user_connection_items(
                user,
                "#a = :true",
                &[(":true", AttributeValue::Bool(true))],
                all_groups_socket_from_item,
            )
            .await?;
        let subscriptions: Vec<Connection> =
            sockets.iter().map(|s| s.subscription(group)).collect();
        self.put_subscriptions(&subscriptions).await?;
        Ok(subscriptions)
    }

    async fn delete_subscription(&self, connection: &Connection) -> Result<(), StoreError> {
        let key = if connection.all_groups {
            subscription_key(&connection.connection_id, connection.group_id)
        } else {
            connection.connection_id.clone()
        };
        self.delete_connection_item(key).await?;
        self.uncount(std::slice::from_ref(connection)).await
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<Vec<Connection>, StoreError> {
        let Some(item) = self.connection_item(connection_id).await? else {
            return Ok(Vec::new());
        };
        if !is_all_groups_socket(&item) {
            let connection = connection_from_item(&item)?;
            self.delete_connection_item(connection_id.to_owned())
                .await?;
            self.uncount(std::slice::from_ref(&connection)).await?;
            return Ok(vec![connection]);
        }
        let socket = all_groups_socket_from_item(&item)?;
        // The socket first, so that no join applied from now on subscribes it again.
        self.delete_connection_item(connection_id.to_owned())
            .await?;
        let subscriptions = self
            .user_connection_items(
                socket.user_id,
                "#s = :s",
                &[(":s", s(connection_id))],
                connection_from_item,
            )
            .await?;
        let keys: Vec<String> = subscriptions
            .iter()
            .map(|c| subscription_key(connection_id, c.group_id))
            .collect();
        stream::iter(keys)
            .map(|key| self.delete_connection_item(key))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        self.uncount(&subscriptions).await?;
        Ok(subscriptions)
    }

    async fn count_socket(
        &self,
        user: UserId,
        group: GroupId,
        socket: &SocketSlot,
    ) -> Result<Vec<SocketSlot>, StoreError> {
        let now = Utc::now();
        let key = slots_key(user, group);
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(&key))
            .update_expression("ADD #s :me SET #e = :e")
            .expression_attribute_names("#s", "sockets")
            .expression_attribute_names("#e", "expires_at")
            .expression_attribute_values(":me", AttributeValue::Ss(vec![slot_entry(socket)]))
            .expression_attribute_values(":e", n(now.timestamp() + MAX_SOCKET_SECONDS + 60))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", e))?;
        let entries = match out.attributes().and_then(|a| a.get("sockets")) {
            Some(AttributeValue::Ss(entries)) => entries.clone(),
            _ => Vec::new(),
        };
        let oldest_allowed = now - chrono::Duration::seconds(MAX_SOCKET_SECONDS);
        let (mut live, stale): (Vec<String>, Vec<String>) = entries
            .into_iter()
            .partition(|e| slot_from_entry(e).is_some_and(|s| s.connected_at > oldest_allowed));
        if !stale.is_empty() {
            // Sockets API Gateway has closed by now, whose $disconnect was lost.
            self.remove_slots(key, stale).await?;
        }
        // Zero-padded millis first: the text order is the age order.
        live.sort();
        Ok(live.iter().filter_map(|e| slot_from_entry(e)).collect())
    }
}
