//! WebSocket `$disconnect`: forgets the connection. Best effort, as on AWS: a connection whose
//! `$disconnect` never ran is removed when a push to it answers `410 Gone`, or by TTL.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::LambdaEvent;
use shared::context::AppContext;
use shared::ws::{connection_id, response};
use shared::ChatError;

pub async fn handle(
    ctx: &AppContext,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    Ok(response(disconnect(ctx, &event.payload).await))
}

async fn disconnect(
    ctx: &AppContext,
    request: &ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(request)?;
    ctx.store.delete_connection(connection_id).await?;
    tracing::info!(connection_id, "disconnected");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use shared::domain::{Connection, GroupId};
    use shared::store::Store;
    use shared::testing::context;

    #[tokio::test]
    async fn the_connection_is_forgotten() {
        let t = context();
        let connection = Connection {
            connection_id: "x1".into(),
            group_id: GroupId::new(1).expect("id"),
            connected_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(2),
        };
        t.store.put_connection(&connection).await.expect("put");
        let payload = serde_json::from_value(serde_json::json!({
            "requestContext": {"routeKey": "$disconnect", "eventType": "DISCONNECT", "connectionId": "x1",
                               "connectedAt": 0, "requestTimeEpoch": 0, "messageId": null},
            "isBase64Encoded": false
        }))
        .expect("event");
        let reply = handle(
            &t.ctx,
            LambdaEvent::new(payload, lambda_runtime::Context::default()),
        )
        .await
        .expect("reply");
        assert_eq!(reply.status_code, 200);
        assert_eq!(t.store.get_connection("x1").await, Ok(None));
    }
}
