//! WebSocket `$connect`: the group comes as `?group_id=` (API Gateway WebSocket routes have no
//! path parameters; the local emulator maps `/subscribe/{group_id}` onto it). An unknown or
//! malformed group refuses the socket; otherwise the connection is stored with its group, its
//! user and its end: two hours, when API Gateway closes it anyway, or the expiry of the token
//! it was opened with, if sooner. A socket that names no group follows every group of its user
//! (signed in, or `?user_id=` in trust-client mode), including those joined later.
//!
//! With identity on, `ws-authorize` has verified the token and the membership before this
//! runs and passes the user and the token's expiry in its context; the membership is checked
//! again here, so that a route deployed without the authorizer cannot subscribe anyone
//! anywhere. A user holds at most `MAX_SOCKETS_PER_USER` sockets on a group, of either kind,
//! counted in one atomic update per socket: opening one more closes their oldest (a new tab or
//! device wins; an abandoned one does not lock its user out), and in a burst of parallel
//! connects an older one still connecting is refused instead. A member's first socket on the
//! group is announced to the group's other sockets (`presence`).

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chat_core::config::{AuthConfig, Config};
use chat_core::domain::{AllGroupsSocket, Connection, GroupId, SocketSlot, UserId};
use chat_core::guard::admit;
use chat_core::guard::{existing_group, require_membership};
use chat_core::limits::{Action, RateLimits, RefusalMemory};
use chat_core::push::{announce_presence, Pusher};
use chat_core::store::RateLimiter;
use chat_core::store::{ConnectionReader, ConnectionWriter, Directory};
use chat_core::ChatError;
use chat_lambda::identity::{connecting_user, token_expiry};
use chat_lambda::ws::{connection_id, MAX_CONNECTION_SECONDS};
use chrono::Utc;
use futures_util::stream::{self, StreamExt};

/// Groups an all-groups socket settles into at once (limit and presence).
const GROUPS_AT_ONCE: usize = 8;

/// What the function holds for its life: the directory (read), the connections, and the
/// Management API, to close a socket over the per-user limit.
pub struct Context {
    pub auth: AuthConfig,
    pub directory: Arc<dyn Directory>,
    pub connections: Arc<dyn ConnectionReader>,
    pub connection_writer: Arc<dyn ConnectionWriter>,
    /// None without a Management API endpoint: surplus sockets are then only forgotten.
    pub pusher: Option<Arc<dyn Pusher>>,
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
        S: Directory + ConnectionReader + ConnectionWriter + RateLimiter + 'static,
    {
        Self {
            auth: config.auth.clone(),
            directory: store.clone(),
            connections: store.clone(),
            connection_writer: store.clone(),
            pusher,
            limiter: Arc::new(RefusalMemory::new(store)),
            limits: config.limits,
        }
    }
}

pub async fn handle(
    ctx: &Context,
    request: ApiGatewayWebsocketProxyRequest,
) -> Result<(), ChatError> {
    let connection_id = connection_id(&request)?;
    let user_id = connecting_user(&ctx.auth, &request)?;
    if let Some(user_id) = user_id {
        admit(ctx.limiter.as_ref(), &ctx.limits, user_id, Action::Connect).await?;
    }
    let named = request
        .query_string_parameters
        .first("group_id")
        .map(str::parse::<GroupId>)
        .transpose()?;
    let now = Utc::now();
    // The socket ends with the right to hold it: API Gateway's two hours, or the token's
    // expiry if sooner (the stream processor then closes it instead of pushing to it).
    let lifetime_end = now + chrono::Duration::seconds(MAX_CONNECTION_SECONDS);
    let expires_at = token_expiry(&request).map_or(lifetime_end, |exp| exp.min(lifetime_end));
    let Some(group_id) = named else {
        let user_id = user_id.ok_or_else(|| {
            ChatError::BadRequest(
                "name a group (?group_id=), or a user whose groups to follow (sign in, or \
                 ?user_id= in trust-client mode)"
                    .into(),
            )
        })?;
        let socket = AllGroupsSocket {
            connection_id: connection_id.to_owned(),
            user_id,
            connected_at: now,
            expires_at,
        };
        return follow_all_groups(ctx, socket).await;
    };
    existing_group(ctx.directory.as_ref(), group_id).await?;
    if let Some(user_id) = user_id {
        require_membership(ctx.directory.as_ref(), user_id, group_id).await?;
    }
    let connection = Connection {
        connection_id: connection_id.to_owned(),
        group_id,
        user_id,
        all_groups: false,
        connected_at: now,
        expires_at,
    };
    ctx.connection_writer.put_connection(&connection).await?;
    tracing::debug!(connection_id, "connected");
    tracing::info!(%group_id, user_id = user_id.map(UserId::get), "subscribed");
    if let Some(user_id) = user_id {
        let me = connection.slot();
        let settled = settle_in(ctx, group_id, user_id, &me).await;
        if let Err(refused) = settled.and(still_held(ctx, connection_id).await) {
            return Err(forget_refused(ctx, connection_id, refused).await);
        }
    }
    Ok(())
}

/// Whether the socket's item is still there at the end of `$connect`: a newer connect of the
/// same user may have closed it as the oldest, while its handshake was not complete (a close
/// that API Gateway may not be able to apply yet). Refused then, not left open and unlisted.
async fn still_held(ctx: &Context, connection_id: &str) -> Result<(), ChatError> {
    match ctx.connections.socket_exists(connection_id).await {
        Ok(false) => Err(over_the_cap()),
        Ok(true) | Err(_) => Ok(()),
    }
}

fn over_the_cap() -> ChatError {
    ChatError::TooManyRequests {
        what: "too many sockets at once: newer sockets of this user took the places".into(),
        retry_after: 1,
    }
}

/// Forgets a socket refused after it was stored; the refusal.
async fn forget_refused(ctx: &Context, connection_id: &str, refused: ChatError) -> ChatError {
    if let Err(e) = ctx.connection_writer.delete_connection(connection_id).await {
        tracing::warn!(error = %e, "cannot forget a refused socket; it expires");
    }
    refused
}

/// A socket that follows every group of its user: subscribed to each group they belong to now
/// (the stream processor adds those they join later and drops those they leave).
async fn follow_all_groups(ctx: &Context, socket: AllGroupsSocket) -> Result<(), ChatError> {
    let user_id = socket.user_id;
    if ctx.directory.get_user(user_id).await?.is_none() {
        return Err(ChatError::NotFound(format!("user {user_id} not found")));
    }
    let groups: Vec<GroupId> = ctx
        .directory
        .groups_of(user_id)
        .await?
        .into_iter()
        .map(|m| m.group_id)
        .collect();
    ctx.connection_writer
        .put_all_groups_socket(&socket, &groups)
        .await?;
    tracing::info!(
        user_id = user_id.get(),
        groups = groups.len(),
        "subscribed to all the user's groups"
    );
    let id = socket.connection_id.as_str();
    let me = SocketSlot {
        connection_id: id.to_owned(),
        connected_at: socket.connected_at,
    };
    let settled: Result<Vec<()>, ChatError> = stream::iter(groups)
        .map(|group_id| settle_in(ctx, group_id, user_id, &me))
        .buffer_unordered(GROUPS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect();
    if let Err(refused) = settled.and(still_held(ctx, id).await) {
        return Err(forget_refused(ctx, id, refused).await);
    }
    Ok(())
}

/// After a user's socket joined a group's: counted among the user's sockets there, the
/// oldest beyond the cap closed, and the user's first socket announced. Refused only when the
/// socket is itself beyond the cap (newer ones of a burst of connects took the places); the
/// rest is best effort, the socket being accepted already.
async fn settle_in(
    ctx: &Context,
    group_id: GroupId,
    user_id: UserId,
    me: &SocketSlot,
) -> Result<(), ChatError> {
    let closed = take_a_place(ctx, group_id, user_id, me).await?;
    let Some(pusher) = &ctx.pusher else {
        return Ok(());
    };
    let group_sockets = match ctx.connections.connections_for_group(group_id).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the group's sockets; no presence");
            return Ok(());
        }
    };
    let open = group_sockets
        .into_iter()
        .filter(|c| !closed.contains(&c.connection_id))
        .collect();
    announce_presence(
        pusher.as_ref(),
        open,
        group_id,
        user_id,
        &me.connection_id,
        true,
    )
    .await;
    Ok(())
}

/// Counts the socket among the user's on the group (one atomic update: every connect sees
/// all those counted before it) and closes the oldest beyond `MAX_SOCKETS_PER_USER`, a new tab
/// or device winning; the ids it closed. When this socket is itself among the oldest beyond
/// the cap, it is refused instead (429). A store that cannot count leaves the socket uncapped.
async fn take_a_place(
    ctx: &Context,
    group_id: GroupId,
    user_id: UserId,
    me: &SocketSlot,
) -> Result<Vec<String>, ChatError> {
    let counted = match ctx
        .connection_writer
        .count_socket(user_id, group_id, me)
        .await
    {
        Ok(counted) => counted,
        Err(e) => {
            tracing::warn!(error = %e, "cannot count the user's sockets; no cap");
            return Ok(Vec::new());
        }
    };
    let surplus = counted.len().saturating_sub(ctx.auth.max_sockets_per_user);
    let oldest = &counted[..surplus];
    if oldest.iter().any(|s| s.connection_id == me.connection_id) {
        tracing::info!(
            user_id = user_id.get(),
            "refused a socket: newer ones of the user fill the cap"
        );
        return Err(over_the_cap());
    }
    let mut closed = Vec::new();
    for surplus in oldest {
        let id = surplus.connection_id.as_str();
        if let Some(pusher) = &ctx.pusher {
            if let Err(e) = pusher.disconnect(id).await {
                tracing::warn!(error = %e, "cannot close a socket over the per-user limit");
                continue;
            }
        }
        if let Err(e) = ctx.connection_writer.delete_connection(id).await {
            tracing::warn!(error = %e, "cannot forget a socket over the per-user limit");
        }
        tracing::info!(
            user_id = user_id.get(),
            "closed the user's oldest socket (over the limit)"
        );
        closed.push(id.to_owned());
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::store::{DirectoryWriter, StoreError};
    use chat_testkit::requests::ws_event;
    use chat_testkit::{Fakes, Fallible, MemoryPusher, TestContext};

    fn over(fakes: Fakes, pusher: Option<Arc<dyn Pusher>>) -> TestContext<Context> {
        fakes.with(|f| Context::new(&f.config, f.store.clone(), pusher))
    }

    fn context() -> TestContext<Context> {
        over(Fakes::trust_client(), None)
    }

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

    fn as_user(
        mut event: ApiGatewayWebsocketProxyRequest,
        user: &str,
    ) -> ApiGatewayWebsocketProxyRequest {
        event.request_context.authorizer.fields.insert(
            chat_lambda::identity::CONTEXT_USER_ID.into(),
            serde_json::json!(user),
        );
        event
    }

    #[tokio::test]
    async fn with_identity_only_members_subscribe_and_the_user_is_stored() {
        let t = over(Fakes::jwt(), None);
        let group = |g: &str| serde_json::json!({ "group_id": g });
        let err = handle(&t.ctx, event("a", group("1")))
            .await
            .expect_err("no authorizer context");
        assert_eq!(err.status(), 401);
        let err = handle(&t.ctx, as_user(event("b", group("1")), "3"))
            .await
            .expect_err("not a member");
        assert_eq!(err.status(), 404);
        handle(&t.ctx, as_user(event("c", group("1")), "1"))
            .await
            .expect("a member");
        let stored = t
            .store
            .get_connection("c")
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(stored.user_id.map(UserId::get), Some(1));
        assert!(t.store.get_connection("b").await.expect("get").is_none());
    }

    #[tokio::test]
    async fn one_socket_over_the_limit_closes_the_users_oldest() {
        let pusher = Arc::new(MemoryPusher::new());
        let t = over(Fakes::jwt(), Some(pusher.clone()));
        let limit = t.ctx.auth.max_sockets_per_user;
        for n in 0..=limit {
            let id = format!("s{n}");
            pusher.open(&id);
            let e = as_user(event(&id, serde_json::json!({"group_id": "1"})), "2");
            handle(&t.ctx, e).await.expect("connect");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Alice's socket in the same group is not Bob's to lose.
        pusher.open("alice");
        let e = as_user(event("alice", serde_json::json!({"group_id": "1"})), "1");
        handle(&t.ctx, e).await.expect("connect");
        assert_eq!(pusher.disconnected(), ["s0"]);
        let left = t
            .store
            .connections_for_group(GroupId::new(1).expect("id"))
            .await
            .expect("query");
        assert_eq!(left.len(), limit + 1);
        assert!(left.iter().all(|c| c.connection_id != "s0"));
    }

    #[tokio::test]
    async fn a_socket_older_than_the_newer_ones_filling_the_cap_is_refused_and_forgotten() {
        let pusher = Arc::new(MemoryPusher::new());
        let t = over(Fakes::jwt(), Some(pusher.clone()));
        let (user, group) = (UserId::new(2).expect("id"), GroupId::new(1).expect("id"));
        // A burst: newer sockets of Bob's were counted before this one's $connect counts it.
        for n in 0..t.ctx.auth.max_sockets_per_user {
            let newer = SocketSlot {
                connection_id: format!("newer{n}"),
                connected_at: Utc::now() + chrono::Duration::seconds(1),
            };
            t.store
                .count_socket(user, group, &newer)
                .await
                .expect("count");
        }
        pusher.open("late");
        let e = as_user(event("late", serde_json::json!({"group_id": "1"})), "2");
        let refused = handle(&t.ctx, e).await.expect_err("over the cap");
        assert_eq!(refused.status(), 429);
        assert!(!t.store.socket_exists("late").await.expect("read"));
        assert!(pusher.disconnected().is_empty(), "the newer ones stay");
    }

    #[tokio::test]
    async fn a_socket_lives_until_its_token_expires_if_sooner_than_two_hours() {
        let t = over(Fakes::jwt(), None);
        let exp = Utc::now().timestamp() + 600;
        let mut e = as_user(event("brief", serde_json::json!({"group_id": "1"})), "1");
        e.request_context.authorizer.fields.insert(
            chat_lambda::identity::CONTEXT_TOKEN_EXPIRES_AT.into(),
            serde_json::json!(exp),
        );
        handle(&t.ctx, e).await.expect("connect");
        let stored = t
            .store
            .get_connection("brief")
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(stored.expires_at.timestamp(), exp);
    }

    #[tokio::test]
    async fn without_a_group_the_socket_follows_each_of_its_users_groups() {
        let pusher = Arc::new(MemoryPusher::new());
        let t = over(Fakes::jwt(), Some(pusher.clone()));
        let g = |n: i128| GroupId::new(n).expect("id");
        let charlie = UserId::new(3).expect("id");
        t.store
            .seed_member(&chat_core::domain::Member {
                group_id: g(1),
                user_id: charlie,
                role: chat_core::domain::Role::Member,
                read_mark: 0,
            })
            .await
            .expect("seed");
        pusher.open("alice");
        let alice = as_user(event("alice", serde_json::json!({"group_id": "1"})), "1");
        handle(&t.ctx, alice).await.expect("connect");
        pusher.open("all");
        let all = as_user(event("all", serde_json::json!({})), "3");
        handle(&t.ctx, all).await.expect("connect");
        for group in [g(1), g(2)] {
            let sub = t
                .store
                .subscription("all", group)
                .await
                .expect("get")
                .expect("follows the group");
            assert!(sub.all_groups);
            assert_eq!(sub.user_id, Some(charlie));
        }
        assert_eq!(
            pusher.frames("alice"),
            [serde_json::json!({"event": "presence", "group_id": 1, "user_id": 3, "online": true})]
        );
    }

    #[tokio::test]
    async fn without_a_group_an_anonymous_or_unknown_user_is_refused() {
        let t = context();
        let err = handle(&t.ctx, event("a", serde_json::json!({})))
            .await
            .expect_err("nobody to follow");
        assert_eq!(err.status(), 400);
        let err = handle(&t.ctx, event("b", serde_json::json!({"user_id": "77"})))
            .await
            .expect_err("unknown user");
        assert_eq!(err.status(), 404);
        handle(&t.ctx, event("c", serde_json::json!({"user_id": "4"})))
            .await
            .expect("a known user, trust-client");
        let sub = t
            .store
            .subscription("c", GroupId::new(2).expect("id"))
            .await
            .expect("get");
        assert!(sub.is_some());
    }
}
