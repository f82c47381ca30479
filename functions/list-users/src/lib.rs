//! `GET /users/`: the users, in the original app's shape. In trust-client mode without a
//! caller, every user, as the original app listed them (in pages only when `limit` or `after`
//! asks); for a signed-in caller, the people who share a group with them (themself included),
//! by id, in pages: `limit` (default 100, at most 1,000) and `after=<user_id>`, with a `Link`
//! header (`rel="next"`) to the next page.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use chat_core::config::{AuthConfig, Config};
use chat_core::domain::{User, UserId, ValidationError};
use chat_core::store::Directory;
use chat_core::ChatError;
use chat_lambda::http::{json, parse_query, query_param, require_method};
use chat_lambda::identity::{claimed_user, reader};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;
/// Directory reads at once.
const CONCURRENCY: usize = 16;

/// What the function holds for its life: the directory, read only.
pub struct Context {
    pub auth: AuthConfig,
    pub directory: Arc<dyn Directory>,
}

impl Context {
    /// Over the DynamoDB store.
    pub async fn from_config(config: Config) -> Result<Self, Infallible> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        Ok(Self::new(&config, Arc::new(store)))
    }

    pub fn new(config: &Config, directory: Arc<impl Directory + 'static>) -> Self {
        Self {
            auth: config.auth.clone(),
            directory,
        }
    }
}

pub async fn handle(ctx: &Context, request: Request) -> Result<Response<Body>, ChatError> {
    require_method(&request, &Method::GET)?;
    // Any signed-in user may see the people they chat with; without a token only in
    // trust-client mode, everyone.
    reader(&ctx.auth, &request, None)?;
    let limit = limit(query_param(&request, "limit"))?;
    let after: Option<UserId> = parse_query(&request, "after")?;
    let beyond = |id: &UserId| after.is_none_or(|after| *id > after);
    let (users, more) = match claimed_user(&request)? {
        // The original app's listing: everyone, a page only when asked for.
        None => {
            let mut all = ctx.directory.list_users().await?;
            all.retain(|u| beyond(&u.user_id));
            let page = limit.unwrap_or(all.len()).min(all.len());
            let more = all.len() > page;
            all.truncate(page);
            (all, more)
        }
        Some(caller) => {
            let people = people_of(ctx.directory.as_ref(), caller).await?;
            let mut ids = people.into_iter().filter(beyond);
            let page: Vec<UserId> = ids
                .by_ref()
                .take(limit.unwrap_or(DEFAULT_PAGE_SIZE))
                .collect();
            let more = ids.next().is_some();
            let directory = ctx.directory.as_ref();
            let users: Vec<User> = stream::iter(page)
                .map(|id| async move { directory.get_user(id).await })
                .buffered(CONCURRENCY)
                .try_filter_map(|user| async move { Ok(user) })
                .try_collect()
                .await?;
            (users, more)
        }
    };
    let mut response = json(StatusCode::OK, &users);
    if let (true, Some(last)) = (more, users.last()) {
        let size = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let link = format!("</users?after={}&limit={size}>; rel=\"next\"", last.user_id);
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

/// The ids of everyone in a group with `caller`, and `caller`, in order.
async fn people_of(
    directory: &dyn Directory,
    caller: UserId,
) -> Result<BTreeSet<UserId>, ChatError> {
    let groups = directory.groups_of(caller).await?;
    let members: Vec<Vec<UserId>> = stream::iter(groups)
        .map(|m| async move {
            let members = directory.members_of(m.group_id).await?;
            Ok::<_, ChatError>(members.iter().map(|m| m.user_id).collect())
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut people: BTreeSet<UserId> = members.into_iter().flatten().collect();
    people.insert(caller);
    Ok(people)
}

fn limit(raw: Option<String>) -> Result<Option<usize>, ChatError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(Some(n)),
        _ => Err(ValidationError(format!(
            "limit must be a whole number from 1 to {MAX_PAGE_SIZE}, got `{}`",
            raw.chars().take(40).collect::<String>()
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::domain::Role;
    use chat_core::store::{MembershipWriter, StoreError};
    use chat_testkit::requests::{reply, request, signed_in};
    use chat_testkit::{Fakes, Fallible};

    fn ctx(f: &Fakes) -> Context {
        Context::new(&f.config, f.store.clone())
    }

    fn ids(body: &serde_json::Value) -> Vec<u64> {
        body.as_array()
            .expect("list")
            .iter()
            .map(|u| u["user_id"].as_u64().expect("id"))
            .collect()
    }

    #[tokio::test]
    async fn the_users_come_in_the_original_shape() {
        let f = Fakes::trust_client();
        let (status, body) = reply(handle(&ctx(&f), request(Method::GET, &[], &[], None)).await);
        assert_eq!(status, 200);
        assert_eq!(
            body[1],
            serde_json::json!({"user_id": 2, "name": "Bob", "group_id": 1, "can_edit": true, "can_delete": true})
        );
        assert_eq!(body.as_array().map(Vec::len), Some(4));
    }

    #[tokio::test]
    async fn failures_are_json_errors() {
        let f = Fakes::trust_client();
        let (status, _) = reply(handle(&ctx(&f), request(Method::POST, &[], &[], None)).await);
        assert_eq!(status, 405);
        f.store.fail_with(StoreError::Unavailable {
            op: "Query",
            cause: "down".into(),
        });
        let (status, body) = reply(handle(&ctx(&f), request(Method::GET, &[], &[], None)).await);
        assert_eq!((status, body["error"].is_string()), (503, true));
    }

    #[tokio::test]
    async fn a_signed_in_caller_sees_the_people_they_share_a_group_with() {
        let f = Fakes::jwt();
        let plain = request(Method::GET, &[], &[], None);
        assert_eq!(reply(handle(&ctx(&f), plain).await).0, 401);
        let signed = signed_in(request(Method::GET, &[], &[], None), "2");
        let (status, body) = reply(handle(&ctx(&f), signed).await);
        assert_eq!((status, ids(&body)), (200, vec![1, 2]));
        // Charlie joins group 1: Bob sees him too.
        let (g1, charlie) = (
            chat_core::domain::GroupId::new(1).expect("id"),
            UserId::new(3).expect("id"),
        );
        f.store
            .apply_membership(g1, charlie, Some(Role::Member), 9)
            .await
            .expect("joined");
        let signed = signed_in(request(Method::GET, &[], &[], None), "2");
        assert_eq!(ids(&reply(handle(&ctx(&f), signed).await).1), [1, 2, 3]);
    }

    #[tokio::test]
    async fn pages_follow_the_link() {
        let f = Fakes::jwt();
        let first = signed_in(request(Method::GET, &[], &[("limit", "1")], None), "2");
        let response = handle(&ctx(&f), first).await.expect("page");
        let link = response.headers()[header::LINK]
            .to_str()
            .expect("text")
            .to_owned();
        assert_eq!(link, "</users?after=1&limit=1>; rel=\"next\"");
        let (_, body) = chat_testkit::requests::parts(&response);
        assert_eq!(ids(&body), [1]);
        let next = signed_in(
            request(Method::GET, &[], &[("limit", "1"), ("after", "1")], None),
            "2",
        );
        let response = handle(&ctx(&f), next).await.expect("page");
        assert!(response.headers().get(header::LINK).is_none());
        assert_eq!(ids(&chat_testkit::requests::parts(&response).1), [2]);
        for bad in ["0", "1001", "x"] {
            let r = signed_in(request(Method::GET, &[], &[("limit", bad)], None), "2");
            assert_eq!(reply(handle(&ctx(&f), r).await).0, 400, "{bad}");
            let open = Fakes::trust_client();
            let r = request(Method::GET, &[], &[("limit", bad)], None);
            assert_eq!(reply(handle(&ctx(&open), r).await).0, 400, "{bad}");
        }
        // Without a caller, a page only when asked for.
        let open = Fakes::trust_client();
        let r = request(Method::GET, &[], &[("limit", "3"), ("after", "0")], None);
        assert_eq!(
            reply(handle(&ctx(&open), r).await).0,
            400,
            "after=0 is no user id"
        );
        let r = request(Method::GET, &[], &[("limit", "3")], None);
        let response = handle(&ctx(&open), r).await.expect("page");
        assert_eq!(ids(&chat_testkit::requests::parts(&response).1), [1, 2, 3]);
        assert_eq!(
            response.headers()[header::LINK],
            "</users?after=3&limit=3>; rel=\"next\""
        );
    }
}
