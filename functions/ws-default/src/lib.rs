//! WebSocket `$default`: what a client sends on its socket. Subscriptions are read-only, as in
//! the original app (messages are sent over HTTP), so a frame from a known connection is
//! accepted and changes nothing; an event without a connection id is refused.

use std::convert::Infallible;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chat_core::config::Config;
use chat_core::ChatError;
use chat_lambda::ws::connection_id;

/// What the function holds: nothing. It reads and writes nothing, so it is given no store and
/// its role grants no access.
pub struct Context;

impl Context {
    pub async fn from_config(_config: Config) -> Result<Self, Infallible> {
        Ok(Self)
    }
}

pub async fn handle(
    _ctx: &Context,
    request: ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(&request)?;
    tracing::debug!(
        connection_id,
        bytes = request.body.as_deref().map_or(0, str::len),
        "ignored a client frame"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::domain::{Connection, GroupId};
    use chat_core::store::{ConnectionReader, ConnectionWriter, Directory};
    use chat_testkit::requests::ws_event;
    use chat_testkit::Fakes;
    use chrono::Utc;

    #[tokio::test]
    async fn a_client_frame_is_accepted_and_changes_nothing() {
        let t = Fakes::trust_client().with(|_| Context);
        let connection = Connection {
            connection_id: "c1".into(),
            group_id: GroupId::new(1).expect("id"),
            user_id: None,
            connected_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(2),
        };
        t.store.put_connection(&connection).await.expect("put");
        let users = t.store.list_users().await.expect("users");
        let mut event = ws_event("$default", Some("c1"), serde_json::json!({}));
        event.body = Some(r#"{"user_id": 1, "message": "sent over the socket"}"#.into());
        assert_eq!(handle(&t.ctx, event).await, Ok(()));
        assert!(t.publisher.records().is_empty(), "nothing is published");
        assert_eq!(
            t.store.get_connection("c1").await,
            Ok(Some(connection)),
            "the connection is kept as it was"
        );
        assert_eq!(t.store.list_users().await.expect("users"), users);
    }

    #[tokio::test]
    async fn an_event_without_a_connection_id_is_refused() {
        let event = ws_event("$default", None, serde_json::json!({}));
        let err = handle(&Context, event).await.expect_err("refused");
        assert_eq!(err.status(), 400);
    }
}
