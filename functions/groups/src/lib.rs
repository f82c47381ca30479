//! The group routes, one function (they share their checks and their clients):
//! - `POST /groups` creates a group with the caller as its owner;
//! - `GET /groups` lists the caller's groups with their unread counts;
//! - `GET /groups/{group_id}/members` lists a group's members, online or not;
//! - `POST /groups/{group_id}/members` adds a member or changes a member's role;
//! - `DELETE /groups/{group_id}/members/{user_id}` removes a member, or leaves;
//! - `PUT /groups/{group_id}/read` moves the caller's read mark forward.
//!
//! Creating a group is a write of its own (nothing precedes it in the group's log). Every
//! other change is checked here, for a clear answer, and published to the chat topic keyed by
//! the group, so that it is ordered with the group's messages; the stream processor applies it,
//! checking again under the log's authority.

use std::collections::HashSet;
use std::sync::Arc;

use chat_core::config::{AuthConfig, Config};
use chat_core::domain::{group_name, Group, GroupId, Member, MessageId, Role, UserId};
use chat_core::events::ChatEvent;
use chat_core::guard::{existing_group, existing_user, require_membership};
use chat_core::publish::{publish_event, PublishError, Publisher};
use chat_core::store::{
    ConnectionReader, Cursor, Directory, GroupCreator, MessageReader, PageRequest,
};
use chat_core::ChatError;
use chat_lambda::http::{json, json_body, parse_query};
use chat_lambda::identity::{acting_user, reader};
use chrono::Utc;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};

/// Groups read at once when listing a caller's groups.
const LIST_CONCURRENCY: usize = 16;
/// Attempts at a free group id before giving up (ids are random; a clash is rare).
const CREATE_ATTEMPTS: usize = 5;
/// New group ids: above the seed's and any hand-made ones, well below 2^53.
const GROUP_IDS: std::ops::Range<u64> = 1_000_000..1_000_000_000_000;

/// What the function holds for its life: the directory and messages (read), creating groups,
/// the connections (read, for who is online) and the log.
#[derive(Clone)]
pub struct Context {
    pub auth: AuthConfig,
    pub chat_topic: String,
    pub directory: Arc<dyn Directory>,
    pub messages: Arc<dyn MessageReader>,
    pub groups: Arc<dyn GroupCreator>,
    pub connections: Arc<dyn ConnectionReader>,
    pub publisher: Arc<dyn Publisher>,
}

impl Context {
    /// Over the DynamoDB store and the Kafka producer.
    pub async fn from_config(config: Config) -> Result<Self, PublishError> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        let publisher = chat_kafka::KafkaPublisher::new(&config.kafka)?;
        Ok(Self::new(&config, Arc::new(store), Arc::new(publisher)))
    }

    pub fn new<S>(config: &Config, store: Arc<S>, publisher: Arc<dyn Publisher>) -> Self
    where
        S: Directory + MessageReader + GroupCreator + ConnectionReader + 'static,
    {
        Self {
            auth: config.auth.clone(),
            chat_topic: config.kafka.chat_topic.clone(),
            directory: store.clone(),
            messages: store.clone(),
            groups: store.clone(),
            connections: store,
            publisher,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(default)]
    user_id: Option<UserId>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    /// The member to add.
    user_id: UserId,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    message_id: MessageId,
    #[serde(default)]
    user_id: Option<UserId>,
}

#[derive(Serialize)]
struct GroupSummary {
    group_id: GroupId,
    name: String,
    role: Role,
    unread: u32,
    last_message_id: Option<MessageId>,
}

#[derive(Serialize)]
struct MemberSummary {
    user_id: UserId,
    name: String,
    role: Role,
    online: bool,
}

pub async fn handle(ctx: &Context, request: Request) -> Result<Response<Body>, ChatError> {
    let params = request.path_parameters();
    let group: Option<GroupId> = params.first("group_id").map(str::parse).transpose()?;
    let member: Option<UserId> = params.first("user_id").map(str::parse).transpose()?;
    // The routes differ by method and path parameters (one route per pair).
    match (request.method(), group, member) {
        (&Method::POST, None, _) => create(ctx, &request).await,
        (&Method::GET, None, _) => list(ctx, &request).await,
        (&Method::GET, Some(g), None) => members(ctx, &request, g).await,
        (&Method::POST, Some(g), None) => add(ctx, &request, g).await,
        (&Method::DELETE, Some(g), Some(u)) => remove(ctx, &request, g, u).await,
        (&Method::PUT, Some(g), None) => mark_read(ctx, &request, g).await,
        (method, _, _) => Err(ChatError::MethodNotAllowed(format!(
            "{method} is not allowed on {}",
            request.uri().path()
        ))),
    }
}

/// `POST /groups`: 201 with the new group; the caller is its owner.
async fn create(ctx: &Context, request: &Request) -> Result<Response<Body>, ChatError> {
    let body: CreateRequest = json_body(request)?.ok_or_else(|| {
        ChatError::BadRequest("a JSON body with the group's name is required".into())
    })?;
    let caller = acting_user(&ctx.auth, request, body.user_id)?;
    let name = group_name(&body.name)?;
    existing_user(ctx.directory.as_ref(), caller).await?;
    for _ in 0..CREATE_ATTEMPTS {
        let group = Group {
            group_id: random_group_id()?,
            name: name.clone(),
        };
        if ctx.groups.create_group(&group, caller).await? {
            return Ok(json(
                StatusCode::CREATED,
                &serde_json::json!({"group_id": group.group_id, "name": group.name, "role": Role::Owner}),
            ));
        }
    }
    Err(ChatError::Internal(
        "no free group id after several attempts".into(),
    ))
}

fn random_group_id() -> Result<GroupId, ChatError> {
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    let id = GROUP_IDS.start + random % (GROUP_IDS.end - GROUP_IDS.start);
    Ok(GroupId::new(i128::from(id))?)
}

/// `GET /groups`: the caller's groups, by id, each with its unread count and newest message.
async fn list(ctx: &Context, request: &Request) -> Result<Response<Body>, ChatError> {
    let caller = acting_user(&ctx.auth, request, parse_query(request, "user_id")?)?;
    let memberships = ctx.directory.groups_of(caller).await?;
    let mut groups: Vec<GroupSummary> = stream::iter(memberships)
        .map(|m| summary(ctx, m))
        .buffer_unordered(LIST_CONCURRENCY)
        .try_filter_map(|s| async move { Ok(s) })
        .try_collect()
        .await?;
    groups.sort_by_key(|g| g.group_id);
    Ok(json(StatusCode::OK, &groups))
}

async fn summary(ctx: &Context, member: Member) -> Result<Option<GroupSummary>, ChatError> {
    let group = member.group_id;
    let (found, newest, unread) = tokio::try_join!(
        ctx.directory.get_group(group),
        ctx.messages.list_messages(
            group,
            PageRequest {
                limit: 1,
                cursor: Cursor::Latest
            }
        ),
        ctx.messages
            .unread_count(group, member.user_id, member.read_mark),
    )?;
    Ok(found.map(|found| GroupSummary {
        group_id: group,
        name: found.name,
        role: member.role,
        unread,
        last_message_id: newest.messages.last().map(|m| m.id),
    }))
}

/// `GET /groups/{group_id}/members`: for members (and, in trust-client mode, an anonymous
/// reader, as history is).
async fn members(
    ctx: &Context,
    request: &Request,
    group: GroupId,
) -> Result<Response<Body>, ChatError> {
    let reader = reader(&ctx.auth, request, parse_query(request, "user_id")?)?;
    existing_group(ctx.directory.as_ref(), group).await?;
    if let Some(user) = reader {
        require_membership(ctx.directory.as_ref(), user, group).await?;
    }
    let (members, connections) = tokio::try_join!(
        ctx.directory.members_of(group),
        ctx.connections.connections_for_group(group),
    )?;
    let online: HashSet<UserId> = connections.iter().filter_map(|c| c.user_id).collect();
    let (directory, online) = (ctx.directory.as_ref(), &online);
    let summaries: Vec<MemberSummary> = stream::iter(members)
        .map(|m| async move {
            let name = directory.get_user(m.user_id).await?.map(|u| u.name);
            Ok::<_, ChatError>(name.map(|name| MemberSummary {
                user_id: m.user_id,
                name,
                role: m.role,
                online: online.contains(&m.user_id),
            }))
        })
        .buffered(LIST_CONCURRENCY)
        .try_filter_map(|s| async move { Ok(s) })
        .try_collect()
        .await?;
    Ok(json(StatusCode::OK, &summaries))
}

/// `POST /groups/{group_id}/members`: 201 once the change is in the log.
async fn add(
    ctx: &Context,
    request: &Request,
    group: GroupId,
) -> Result<Response<Body>, ChatError> {
    let body: AddRequest = json_body(request)?.ok_or_else(|| {
        ChatError::BadRequest("a JSON body with the user_id to add is required".into())
    })?;
    // The body's user_id is the member to add; in trust-client mode the query's names the caller.
    let caller = acting_user(&ctx.auth, request, parse_query(request, "user_id")?)?;
    let role = match body.role.as_deref() {
        None => Role::Member,
        Some(raw) => match raw.parse::<Role>()? {
            Role::Owner => {
                return Err(ChatError::BadRequest("role must be member or admin".into()))
            }
            role => role,
        },
    };
    existing_group(ctx.directory.as_ref(), group).await?;
    let actor = require_membership(ctx.directory.as_ref(), caller, group).await?;
    if !actor.role.manages() {
        return Err(ChatError::Forbidden(format!(
            "only an owner or admin of group {group} may add members"
        )));
    }
    existing_user(ctx.directory.as_ref(), body.user_id).await?;
    let current = ctx.directory.membership(group, body.user_id).await?;
    if actor.role == Role::Admin && current.as_ref().is_some_and(|m| m.role == Role::Owner) {
        return Err(ChatError::Forbidden(
            "only an owner may change an owner's role".into(),
        ));
    }
    let event = ChatEvent::MemberAdded {
        group_id: group,
        user_id: body.user_id,
        role,
        by: caller,
        at: Utc::now(),
    };
    publish_event(ctx.publisher.as_ref(), &ctx.chat_topic, &event, None).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({"group_id": group, "user_id": body.user_id, "role": role}),
    ))
}

/// `DELETE /groups/{group_id}/members/{user_id}`: 204 once the change is in the log.
async fn remove(
    ctx: &Context,
    request: &Request,
    group: GroupId,
    member: UserId,
) -> Result<Response<Body>, ChatError> {
    // The path's user_id is the member; in trust-client mode the query's names the caller.
    let caller = acting_user(&ctx.auth, request, parse_query(request, "user_id")?)?;
    existing_group(ctx.directory.as_ref(), group).await?;
    let actor = require_membership(ctx.directory.as_ref(), caller, group).await?;
    let target = if member == caller {
        actor.clone()
    } else {
        ctx.directory
            .membership(group, member)
            .await?
            .ok_or_else(|| {
                ChatError::NotFound(format!("user {member} is not a member of group {group}"))
            })?
    };
    if member != caller {
        let allowed = match actor.role {
            Role::Owner => true,
            Role::Admin => target.role != Role::Owner,
            Role::Member => false,
        };
        if !allowed {
            return Err(ChatError::Forbidden(format!(
                "user {caller} may not remove user {member} from group {group}"
            )));
        }
    }
    if target.role == Role::Owner {
        let owners = ctx
            .directory
            .members_of(group)
            .await?
            .iter()
            .filter(|m| m.role == Role::Owner)
            .count();
        if owners <= 1 {
            return Err(ChatError::Conflict(format!(
                "user {member} is the last owner of group {group}: make another member owner first"
            )));
        }
    }
    let event = ChatEvent::MemberRemoved {
        group_id: group,
        user_id: member,
        by: caller,
        at: Utc::now(),
    };
    publish_event(ctx.publisher.as_ref(), &ctx.chat_topic, &event, None).await?;
    Ok(no_content())
}

/// `PUT /groups/{group_id}/read`: 204 once the mark is in the log; it only ever moves forward.
async fn mark_read(
    ctx: &Context,
    request: &Request,
    group: GroupId,
) -> Result<Response<Body>, ChatError> {
    let body: ReadRequest = json_body(request)?.ok_or_else(|| {
        ChatError::BadRequest("a JSON body with the message_id read is required".into())
    })?;
    let caller = acting_user(&ctx.auth, request, body.user_id)?;
    existing_group(ctx.directory.as_ref(), group).await?;
    let member = require_membership(ctx.directory.as_ref(), caller, group).await?;
    if ctx
        .messages
        .get_message_in(group, body.message_id)
        .await?
        .is_none()
    {
        return Err(ChatError::NotFound(format!(
            "message {} is not a message of group {group}",
            body.message_id
        )));
    }
    if body.message_id.get() > member.read_mark {
        let event = ChatEvent::ReadMarked {
            group_id: group,
            user_id: caller,
            message_id: body.message_id,
            at: Utc::now(),
        };
        publish_event(ctx.publisher.as_ref(), &ctx.chat_topic, &event, None).await?;
    }
    Ok(no_content())
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

#[cfg(test)]
mod tests;
