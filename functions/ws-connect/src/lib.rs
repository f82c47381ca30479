//! WebSocket `$connect`: the group comes as `?group_id=` (API Gateway WebSocket routes have no
//! path parameters; the local emulator maps `/subscribe/{group_id}` onto it). An unknown or
//! malformed group refuses the socket; otherwise the connection is stored with its group and
//! an expiry of two hours, when API Gateway closes it anyway.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chrono::Utc;
use shared::context::AppContext;
use shared::domain::{Connection, GroupId};
use shared::guard::existing_group;
use shared::ws::{connection_id, MAX_CONNECTION_SECONDS};
use shared::ChatError;

pub async fn handle(
    ctx: &AppContext,
    request: ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(&request)?;
    let group_id: GroupId = request
        .query_string_parameters
        .first("group_id")
        .ok_or_else(|| ChatError::BadRequest("group_id is required (?group_id=)".into()))?
        .parse()?;
    existing_group(ctx.store.as_ref(), group_id).await?;
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
    use shared::store::Connections;
    use shared::store::StoreError;
    use shared::testing::{context, ws_event};

    fn event(connection_id: &str, query: serde_json::Value) -> ApiGatewayWebsocketProxyRequest {
        ws_event("$connect", Some(connection_id), query)
    }

    #[tokio::test]
    async fn a_known_group_is_subscribed_for_two_hours() {
        let t = context();
        let reply = handle(&t.ctx, event("abc=", serde_json::json!({"group_id": "2"}))).await;
        assert_eq!(reply, Ok(()));
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
            let err = handle(&t.ctx, event("c", query.clone()))
                .await
                .expect_err("refused");
            assert_eq!(err.status(), status, "{query}");
        }
        assert!(t.store.get_connection("c").await.expect("get").is_none());
        t.store.fail_with(StoreError::Unavailable {
            op: "GetItem",
            cause: "down".into(),
        });
        let err = handle(&t.ctx, event("d", serde_json::json!({"group_id": "1"})))
            .await
            .expect_err("unavailable");
        assert_eq!(err.status(), 503);
    }
}
