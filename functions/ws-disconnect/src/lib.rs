//! WebSocket `$disconnect`: forgets the connection (with every group it followed), and in each
//! group where it was its user's last socket, tells the group's other sockets (`presence`,
//! offline). Best effort, as on AWS: a
//! connection whose `$disconnect` never ran is removed when a push to it answers `410 Gone`,
//! or by TTL.

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chat_core::config::Config;
use chat_core::push::{announce_presence, Pusher};
use chat_core::store::{ConnectionReader, ConnectionWriter};
use chat_core::ChatError;
use chat_lambda::ws::connection_id;
use futures_util::stream::{self, StreamExt};

/// Groups announced at once when an all-groups socket closes.
const GROUPS_AT_ONCE: usize = 8;

/// What the function holds for its life: the connections, to forget one and see who is left,
/// and the Management API, to say so.
pub struct Context {
    pub connections: Arc<dyn ConnectionReader>,
    pub connection_writer: Arc<dyn ConnectionWriter>,
    /// None without a Management API endpoint: presence is then not announced.
    pub pusher: Option<Arc<dyn Pusher>>,
}

impl Context {
    /// Over the DynamoDB store and the Management API.
    pub async fn from_config(config: Config) -> Result<Self, Infallible> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        let pusher = chat_push::ApiGatewayPusher::port_from_config(&config).await;
        Ok(Self::new(Arc::new(store), pusher))
    }

    pub fn new<S>(store: Arc<S>, pusher: Option<Arc<dyn Pusher>>) -> Self
    where
        S: ConnectionReader + ConnectionWriter + 'static,
    {
        Self {
            connections: store.clone(),
            connection_writer: store,
            pusher,
        }
    }
}

pub async fn handle(
    ctx: &Context,
    request: ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(&request)?;
    let closed = ctx
        .connection_writer
        .delete_connection(connection_id)
        .await?;
    tracing::debug!(connection_id, groups = closed.len(), "disconnected");
    let Some(pusher) = &ctx.pusher else {
        return Ok(());
    };
    stream::iter(closed)
        .for_each_concurrent(GROUPS_AT_ONCE, |subscription| async move {
            let Some(user_id) = subscription.user_id else {
                return;
            };
            let group_id = subscription.group_id;
            match ctx.connections.connections_for_group(group_id).await {
                Ok(left) => {
                    announce_presence(
                        pusher.as_ref(),
                        left,
                        group_id,
                        user_id,
                        connection_id,
                        false,
                    )
                    .await
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot list the group's sockets; presence not announced"
                ),
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::domain::{Connection, GroupId, UserId};
    use chat_testkit::requests::ws_event;
    use chat_testkit::{MemoryPusher, MemoryStore};
    use chrono::Utc;

    fn socket(id: &str, user: Option<u64>) -> Connection {
        Connection {
            connection_id: id.into(),
            group_id: GroupId::new(1).expect("id"),
            user_id: user.map(|u| UserId::new(i128::from(u)).expect("id")),
            all_groups: false,
            connected_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(2),
        }
    }

    #[tokio::test]
    async fn the_connection_is_forgotten_and_a_users_last_socket_announced() {
        let store = Arc::new(MemoryStore::seeded());
        let pusher = Arc::new(MemoryPusher::new());
        let ctx = Context::new(store.clone(), Some(pusher.clone()));
        for (id, user) in [("alice-1", Some(1)), ("alice-2", Some(1)), ("bob", Some(2))] {
            store.put_connection(&socket(id, user)).await.expect("put");
            pusher.open(id);
        }
        let close = |id: &str| ws_event("$disconnect", Some(id), serde_json::json!({}));
        assert_eq!(handle(&ctx, close("alice-1")).await, Ok(()));
        assert_eq!(store.get_connection("alice-1").await, Ok(None));
        assert!(pusher.frames("bob").is_empty(), "Alice still has a socket");
        assert_eq!(handle(&ctx, close("alice-2")).await, Ok(()));
        assert_eq!(
            pusher.frames("bob"),
            [
                serde_json::json!({"event": "presence", "group_id": 1, "user_id": 1, "online": false})
            ]
        );
        assert_eq!(
            handle(&ctx, close("unknown")).await,
            Ok(()),
            "an unknown connection is no error"
        );
    }

    #[tokio::test]
    async fn an_all_groups_socket_is_forgotten_in_every_group_and_announced_in_each() {
        let store = Arc::new(MemoryStore::seeded());
        let pusher = Arc::new(MemoryPusher::new());
        let ctx = Context::new(store.clone(), Some(pusher.clone()));
        let g = |n: i128| GroupId::new(n).expect("id");
        let socket = chat_core::domain::AllGroupsSocket {
            connection_id: "all".into(),
            user_id: UserId::new(3).expect("id"),
            connected_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(2),
        };
        store
            .put_all_groups_socket(&socket, &[g(1), g(2)])
            .await
            .expect("put");
        store
            .put_connection(&socket_on("bob", 1, 2))
            .await
            .expect("put");
        store
            .put_connection(&socket_on("dave", 2, 4))
            .await
            .expect("put");
        for id in ["all", "bob", "dave"] {
            pusher.open(id);
        }
        let close = ws_event("$disconnect", Some("all"), serde_json::json!({}));
        assert_eq!(handle(&ctx, close).await, Ok(()));
        for (id, group) in [("bob", 1), ("dave", 2)] {
            assert_eq!(
                pusher.frames(id),
                [
                    serde_json::json!({"event": "presence", "group_id": group, "user_id": 3, "online": false})
                ]
            );
            assert!(store
                .subscription("all", g(group))
                .await
                .expect("get")
                .is_none());
        }
    }

    fn socket_on(id: &str, group: i128, user: i128) -> Connection {
        Connection {
            group_id: GroupId::new(group).expect("id"),
            user_id: Some(UserId::new(user).expect("id")),
            ..socket(id, None)
        }
    }
}
