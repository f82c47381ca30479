//! WebSocket `$connect`: the group comes as `?group_id=` (API Gateway WebSocket routes have no
//! path parameters; the local emulator maps `/subscribe/{group_id}` onto it). An unknown or
//! malformed group refuses the socket; otherwise the connection is stored with its group and
//! an expiry of two hours, when API Gateway closes it anyway.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;
use lambda_runtime::LambdaEvent;
use shared::context::AppContext;
use shared::domain::{Connection, GroupId};
use shared::ws::{connection_id, response, MAX_CONNECTION_SECONDS};
use shared::ChatError;

pub async fn handle(
    ctx: &AppContext,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    Ok(response(connect(ctx, &event.payload).await))
}

async fn connect(
    ctx: &AppContext,
    request: &ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(request)?;
    let group_id: GroupId = request
        .query_string_parameters
        .first("group_id")
        .ok_or_else(|| ChatError::BadRequest("group_id is required (?group_id=)".into()))?
        .parse()?;
    if ctx.store.get_group(group_id).await?.is_none() {
        return Err(ChatError::NotFound(format!(
            "group {group_id} does not exist"
        )));
    }
    let now = Utc::now();
    ctx.store
        .put_connection(&Connection {
            connection_id: connection_id.to_owned(),
            group_id,
            connected_at: now,
            expires_at: now + chrono::Duration::seconds(MAX_CONNECTION_SECONDS),
        })
        .await?;
    tracing::info!(connection_id, %group_id, "connected");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::Store;
    use shared::store::StoreError;
    use shared::testing::context;

    fn event(
        connection_id: &str,
        query: serde_json::Value,
    ) -> LambdaEvent<ApiGatewayWebsocketProxyRequest> {
        let payload = serde_json::from_value(serde_json::json!({
            "headers": {"Host": "localhost:8000"},
            "queryStringParameters": query,
            "requestContext": {
                "routeKey": "$connect", "eventType": "CONNECT", "connectionId": connection_id,
                "domainName": "localhost", "stage": "local", "apiId": "local",
                "connectedAt": 0, "requestTimeEpoch": 0, "requestId": "r", "messageId": null
            },
            "isBase64Encoded": false
        }))
        .expect("a WebSocket event");
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    #[tokio::test]
    async fn a_known_group_is_subscribed_for_two_hours() {
        let t = context();
        let reply = handle(&t.ctx, event("abc=", serde_json::json!({"group_id": "2"})))
            .await
            .expect("reply");
        assert_eq!(reply.status_code, 200);
        let stored = t
            .store
            .connections_for_group(GroupId::new(2).expect("id"))
            .await
            .expect("query");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].connection_id, "abc=");
        let lifetime = stored[0].expires_at - stored[0].connected_at;
        assert_eq!(lifetime.num_seconds(), MAX_CONNECTION_SECONDS);
    }

    #[tokio::test]
    async fn unknown_missing_or_malformed_groups_are_refused() {
        let t = context();
        for (query, status) in [
            (serde_json::json!({"group_id": "3"}), 404),
            (serde_json::json!({}), 400),
            (serde_json::json!({"group_id": "x"}), 400),
            (serde_json::json!({"group_id": "-1"}), 400),
        ] {
            let reply = handle(&t.ctx, event("c", query.clone()))
                .await
                .expect("reply");
            assert_eq!(reply.status_code, status, "{query}");
        }
        assert!(t.store.get_connection("c").await.expect("get").is_none());
        t.store.fail_with(StoreError::Unavailable {
            op: "GetItem",
            cause: "down".into(),
        });
        let reply = handle(&t.ctx, event("d", serde_json::json!({"group_id": "1"})))
            .await
            .expect("reply");
        assert_eq!(reply.status_code, 503);
    }
}
