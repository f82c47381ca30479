//! WebSocket `$default`: what a client sends on its socket. Messages are sent over HTTP, as in
//! the original app; the one frame a client sends is `{"action": "typing", "group_id": g}`,
//! which the group's other sockets get as a `typing` frame, at most one per user per group
//! every [`TYPING_INTERVAL`]. Typing is never stored and never goes through Kafka. Any other
//! frame from a known connection is accepted and changes nothing; an event without a
//! connection id is refused.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chat_core::config::Config;
use chat_core::domain::{GroupId, UserId};
use chat_core::guard::admit;
use chat_core::limits::{Action, RateLimits, RefusalMemory};
use chat_core::push::{push_each, Frame, Pusher};
use chat_core::store::RateLimiter;
use chat_core::store::{ConnectionReader, Directory};
use chat_core::{ChatError, KnownUsers};
use chat_lambda::ws::connection_id;
use serde::Deserialize;

/// A user's typing reaches a group at most once per interval.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(2);
/// Throttle entries kept before the stale ones are dropped.
const THROTTLE_ENTRIES: usize = 10_000;

/// What the function holds for its life: the connections and the directory (read), the
/// Management API, and when each user last typed in each group.
pub struct Context {
    pub connections: Arc<dyn ConnectionReader>,
    pub directory: Arc<dyn Directory>,
    /// None without a Management API endpoint: typing then goes nowhere.
    pub pusher: Option<Arc<dyn Pusher>>,
    pub known_users: KnownUsers,
    throttle: Throttle,
    /// The per-user buckets, and how full they may be.
    pub limiter: Arc<dyn RateLimiter>,
    pub limits: RateLimits,
}

impl Context {
    /// Over the DynamoDB store and the Management API.
    pub async fn from_config(config: Config) -> Result<Self, Infallible> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        let pusher = chat_push::ApiGatewayPusher::port_from_config(&config).await;
        Ok(Self::new(&config, Arc::new(store), pusher))
    }

    pub fn new<S>(config: &Config, store: Arc<S>, pusher: Option<Arc<dyn Pusher>>) -> Self
    where
        S: ConnectionReader + Directory + RateLimiter + 'static,
    {
        Self {
            connections: store.clone(),
            directory: store.clone(),
            pusher,
            known_users: KnownUsers::default(),
            throttle: Throttle::default(),
            limiter: Arc::new(RefusalMemory::new(store)),
            limits: config.limits,
        }
    }
}

/// When each user last typed in each group, in this process. On AWS each instance of the
/// function keeps its own: a client typing through several at once may be heard once per
/// instance per interval, a bound the per-user limits of the API keep small.
#[derive(Default)]
struct Throttle(Mutex<HashMap<(UserId, GroupId), Instant>>);

impl Throttle {
    /// Whether `user` may be heard in `group` now; if so, remembers it.
    fn allow(&self, user: UserId, group: GroupId, now: Instant) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if last.len() >= THROTTLE_ENTRIES {
            last.retain(|_, at| now.duration_since(*at) < TYPING_INTERVAL);
        }
        match last.get(&(user, group)) {
            Some(at) if now.duration_since(*at) < TYPING_INTERVAL => false,
            _ => {
                last.insert((user, group), now);
                true
            }
        }
    }
}

#[derive(Deserialize)]
struct ClientFrame {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    group_id: Option<serde_json::Value>,
}

pub async fn handle(
    ctx: &Context,
    request: ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(&request)?;
    let body = request.body.as_deref().unwrap_or_default();
    match serde_json::from_str::<ClientFrame>(body) {
        Ok(frame) if frame.action.as_deref() == Some("typing") => {
            typing(ctx, connection_id, frame.group_id).await
        }
        _ => {
            tracing::debug!(connection_id, bytes = body.len(), "ignored a client frame");
            Ok(())
        }
    }
}

/// Tells a group the socket follows that its user is typing: the group the frame names, or
/// without one, the group of a socket opened on one. A frame naming a group the socket does not
/// follow is ignored, as is one from an anonymous socket (trust-client mode).
async fn typing(
    ctx: &Context,
    connection_id: &str,
    named: Option<serde_json::Value>,
) -> Result<(), ChatError> {
    let connection = match named {
        None => ctx.connections.get_connection(connection_id).await?,
        Some(value) => match value
            .as_u64()
            .and_then(|g| GroupId::new(i128::from(g)).ok())
        {
            Some(group) => ctx.connections.subscription(connection_id, group).await?,
            None => None,
        },
    };
    let Some(connection) = connection else {
        return Ok(());
    };
    let (Some(user_id), Some(pusher)) = (connection.user_id, &ctx.pusher) else {
        return Ok(());
    };
    if !connection.is_live(chrono::Utc::now()) {
        // Its token expired: the socket ends here ($disconnect forgets it).
        tracing::info!(
            user_id = user_id.get(),
            "closing a socket past its token's expiry"
        );
        if let Err(e) = pusher.disconnect(connection_id).await {
            tracing::warn!(error = %e, "could not close an expired socket");
        }
        return Ok(());
    }
    let group_id = connection.group_id;
    if !ctx.throttle.allow(user_id, group_id, Instant::now()) {
        return Ok(());
    }
    // Across instances and groups: a client typing through many at once is told to slow down.
    match admit(ctx.limiter.as_ref(), &ctx.limits, user_id, Action::Typing).await {
        Ok(()) => {}
        Err(ChatError::TooManyRequests { what, retry_after }) => {
            let frame = serde_json::json!({
                "event": "error", "status": 429, "error": what, "retry_after": retry_after,
            });
            let _ = pusher
                .push(connection_id, frame.to_string().as_bytes())
                .await;
            return Ok(());
        }
        Err(other) => return Err(other),
    }
    let Some(user) = ctx
        .known_users
        .user(ctx.directory.as_ref(), user_id)
        .await?
    else {
        return Ok(());
    };
    let others: Vec<_> = ctx
        .connections
        .connections_for_group(group_id)
        .await?
        .into_iter()
        .filter(|c| c.user_id != Some(user_id))
        .collect();
    let frame = Frame::Typing {
        group_id,
        user_id,
        name: user.name,
    }
    .to_json();
    let reached = push_each(pusher.as_ref(), &others, &frame).await;
    tracing::debug!(%group_id, reached, "typing");
    Ok(())
}

#[cfg(test)]
mod tests;
