//! WebSocket `$disconnect`: forgets the connection. Best effort, as on AWS: a connection whose
//! `$disconnect` never ran is removed when a push to it answers `410 Gone`, or by TTL.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use shared::context::AppContext;
use shared::ws::connection_id;
use shared::ChatError;

pub async fn handle(
    ctx: &AppContext,
    request: ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(&request)?;
    ctx.store.delete_connection(connection_id).await?;
    tracing::debug!(connection_id, "disconnected");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use shared::domain::{Connection, GroupId};
    use shared::store::Connections;
    use shared::testing::{context, ws_event};

    #[tokio::test]
    async fn the_connection_is_forgotten() {
        let t = context();
        let connection = Connection {
            connection_id: "x1".into(),
            group_id: GroupId::new(1).expect("id"),
            user_id: None,
            connected_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(2),
        };
        t.store.put_connection(&connection).await.expect("put");
        let event = ws_event("$disconnect", Some("x1"), serde_json::json!({}));
        assert_eq!(handle(&t.ctx, event).await, Ok(()));
        assert_eq!(t.store.get_connection("x1").await, Ok(None));
    }
}
