//! WebSocket `$disconnect`: forgets the connection, and when it was its user's last socket on
//! the group, tells the group's other sockets (`presence`, offline). Best effort, as on AWS: a
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
    let closed = ctx.connections.get_connection(connection_id).await?;
    ctx.connection_writer
        .delete_connection(connection_id)
        .await?;
    tracing::debug!(connection_id, "disconnected");
    let (Some(closed), Some(pusher)) = (closed, &ctx.pusher) else {
        return Ok(());
    };
    let Some(user_id) = closed.user_id else {
        return Ok(());
    };
    match ctx.connections.connections_for_group(closed.group_id).await {
        Ok(left) => {
            announce_presence(
                pusher.as_ref(),
                left,
                closed.group_id,
                user_id,
                connection_id,
                false,
            )
            .await
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the group's sockets; presence not announced")
        }
    }
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
}
