//! WebSocket `$default`: what a client sends on its socket. Subscriptions are read-only, as in
//! the original app, so the frame is accepted and ignored (messages are sent over HTTP).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::LambdaEvent;
use shared::context::AppContext;
use shared::ws::response;

pub async fn handle(
    _ctx: &AppContext,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let request = &event.payload;
    tracing::debug!(
        connection_id = request
            .request_context
            .connection_id
            .as_deref()
            .unwrap_or_default(),
        bytes = request.body.as_deref().map_or(0, str::len),
        "ignored a client frame"
    );
    Ok(response(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_frame_is_accepted() {
        let t = shared::testing::context();
        let payload = serde_json::from_value(serde_json::json!({
            "requestContext": {"routeKey": "$default", "eventType": "MESSAGE", "connectionId": "c",
                               "connectedAt": 0, "requestTimeEpoch": 0, "messageId": "m"},
            "body": "hello?", "isBase64Encoded": false
        }))
        .expect("event");
        let reply = handle(
            &t.ctx,
            LambdaEvent::new(payload, lambda_runtime::Context::default()),
        )
        .await
        .expect("reply");
        assert_eq!(reply.status_code, 200);
        assert!(t.publisher.records().is_empty());
    }
}
