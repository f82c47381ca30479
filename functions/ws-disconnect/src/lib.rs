//! WebSocket `$disconnect`: forgets the connection. Best effort, as on AWS: a connection whose
//! `$disconnect` never ran is removed when a push to it answers `410 Gone`, or by TTL.

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chat_core::config::Config;
use chat_core::store::ConnectionWriter;
use chat_core::ChatError;
use chat_lambda::ws::connection_id;

/// What the function holds for its life: the connections, to forget one.
pub struct Context {
    pub connections: Arc<dyn ConnectionWriter>,
}

impl Context {
    /// Over the DynamoDB store.
    pub async fn from_config(config: Config) -> Result<Self, Infallible> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        Ok(Self {
            connections: Arc::new(store),
        })
    }
}

pub async fn handle(
    ctx: &Context,
    request: ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(&request)?;
    ctx.connections.delete_connection(connection_id).await?;
    tracing::debug!(connection_id, "disconnected");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::domain::{Connection, GroupId};
    use chat_core::store::ConnectionReader;
    use chat_testkit::requests::ws_event;
    use chat_testkit::MemoryStore;
    use chrono::Utc;

    #[tokio::test]
    async fn the_connection_is_forgotten() {
        let store = Arc::new(MemoryStore::seeded());
        let ctx = Context {
            connections: store.clone(),
        };
        let connection = Connection {
            connection_id: "x1".into(),
            group_id: GroupId::new(1).expect("id"),
            user_id: None,
            connected_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(2),
        };
        store.put_connection(&connection).await.expect("put");
        let event = ws_event("$disconnect", Some("x1"), serde_json::json!({}));
        assert_eq!(handle(&ctx, event).await, Ok(()));
        assert_eq!(store.get_connection("x1").await, Ok(None));
    }
}
