//! `GET /messages/{group_id}`: a page of a group's history, oldest first, in the original
//! app's message shape plus `created_at` (and `edited_at`). Without a cursor the page holds the
//! newest messages; the `Link` header (`rel="next"`) points at the next page when there is one.

use std::convert::Infallible;
use std::sync::Arc;

use chat_core::config::{AuthConfig, Config};
use chat_core::domain::{GroupId, Message, MessageId, ValidationError};
use chat_core::guard::{existing_group, require_membership};
use chat_core::store::{Cursor, Directory, MessageReader, Page, PageRequest, MAX_PAGE_SIZE};
use chat_core::ChatError;
use chat_lambda::http::{json, parse_query, path_param, query_param, require_method};
use chat_lambda::identity::reader;
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};

pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// A page's JSON stays under this many bytes (Lambda's response limit is 6 MB; 1,000 messages
/// of 4,096 four-byte characters would be 16 MB): the messages beyond it are left to the next
/// page, which the `Link` header points at.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// What the function holds for its life: the directory and the messages, read only.
pub struct Context {
    pub auth: AuthConfig,
    pub directory: Arc<dyn Directory>,
    pub messages: Arc<dyn MessageReader>,
}

impl Context {
    /// Over the DynamoDB store.
    pub async fn from_config(config: Config) -> Result<Self, Infallible> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        Ok(Self::new(&config, Arc::new(store)))
    }

    pub fn new<S: Directory + MessageReader + 'static>(config: &Config, store: Arc<S>) -> Self {
        Self {
            auth: config.auth.clone(),
            directory: store.clone(),
            messages: store,
        }
    }
}

pub async fn handle(ctx: &Context, request: Request) -> Result<Response<Body>, ChatError> {
    let request = &request;
    require_method(request, &Method::GET)?;
    let group_id: GroupId = path_param(request, "group_id")?;
    let limit = limit(query_param(request, "limit"))?;
    let before: Option<MessageId> = parse_query(request, "before")?;
    let after: Option<MessageId> = parse_query(request, "after")?;
    let cursor = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(ChatError::BadRequest(
                "give either before or after, not both".into(),
            ))
        }
        (Some(id), None) => Cursor::Before(id),
        (None, Some(id)) => Cursor::After(id),
        (None, None) => Cursor::Latest,
    };
    let reader = reader(&ctx.auth, request, parse_query(request, "user_id")?)?;
    existing_group(ctx.directory.as_ref(), group_id).await?;
    if let Some(user_id) = reader {
        require_membership(ctx.directory.as_ref(), user_id, group_id).await?;
    }
    let mut page = ctx
        .messages
        .list_messages(group_id, PageRequest { limit, cursor })
        .await?;
    bound_bytes(&mut page, matches!(cursor, Cursor::After(_)));
    // Past the last message given, or past the deletions the store read through.
    let next = match (page.more, cursor) {
        (false, _) => None,
        (true, Cursor::After(_)) => page
            .resume
            .or(page.messages.last().map(|m| m.id))
            .map(|id| ("after", id)),
        (true, _) => page
            .resume
            .or(page.messages.first().map(|m| m.id))
            .map(|id| ("before", id)),
    };
    let mut response = json(StatusCode::OK, &page.messages);
    if let Some((direction, id)) = next {
        let link = format!("</messages/{group_id}?{direction}={id}&limit={limit}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

/// Cuts the page to [`MAX_PAGE_BYTES`], keeping the messages next to the cursor: the oldest
/// when reading forward (`after`), else the newest. Always keeps one message, so that a reader
/// moves on.
fn bound_bytes(page: &mut Page, forward: bool) {
    let size = |m: &Message| serde_json::to_vec(m).map_or(0, |v| v.len()) + 1;
    let mut total = 2;
    let mut keep = 0;
    let order: Box<dyn Iterator<Item = &Message>> = if forward {
        Box::new(page.messages.iter())
    } else {
        Box::new(page.messages.iter().rev())
    };
    for m in order {
        total += size(m);
        if keep > 0 && total > MAX_PAGE_BYTES {
            break;
        }
        keep += 1;
    }
    let cut = page.messages.len() - keep;
    if cut > 0 {
        page.more = true;
        page.resume = None;
        if forward {
            page.messages.truncate(keep);
        } else {
            page.messages.drain(..cut);
        }
    }
}

fn limit(raw: Option<String>) -> Result<u32, ChatError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PAGE_SIZE);
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
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
    use chat_core::domain::{Message, MessageText, UserId};
    use chat_core::store::{MessageWriter, StoreError};
    use chat_lambda::http::reply;
    use chat_testkit::requests::{maybe_signed_in, parts, request};
    use chat_testkit::{Fakes, Fallible, TestContext};
    use chrono::Utc;

    fn context() -> TestContext<Context> {
        Fakes::trust_client().with(|f| Context::new(&f.config, f.store.clone()))
    }

    fn jwt_context() -> TestContext<Context> {
        Fakes::jwt().with(|f| Context::new(&f.config, f.store.clone()))
    }

    async fn fill(store: &dyn MessageWriter, group: u64, ids: impl IntoIterator<Item = u64>) {
        fill_with(store, group, ids, |id| format!("m{id}")).await;
    }

    async fn fill_with(
        store: &dyn MessageWriter,
        group: u64,
        ids: impl IntoIterator<Item = u64>,
        text: impl Fn(u64) -> String,
    ) {
        for id in ids {
            let message = Message {
                id: MessageId::new(i128::from(id)).expect("id"),
                user_id: UserId::new(1).expect("id"),
                name: "Alice".into(),
                group_id: GroupId::new(i128::from(group)).expect("id"),
                message: MessageText::new(text(id)).expect("text"),
                can_edit: true,
                can_delete: false,
                created_at: Utc::now(),
                edited_at: None,
            };
            store.insert_message(&message).await.expect("insert");
        }
    }

    async fn get(ctx: &Context, group: &str, query: &[(&str, &str)]) -> Response<Body> {
        reply(
            handle(
                ctx,
                request(Method::GET, &[("group_id", group)], query, None),
            )
            .await,
        )
    }

    fn ids(body: &serde_json::Value) -> Vec<u64> {
        body.as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_u64()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn history_is_oldest_first_in_the_original_shape() {
        let t = context();
        fill(t.store.as_ref(), 1, [1, 5, 9]).await;
        fill(t.store.as_ref(), 2, [2]).await;
        let response = get(&t.ctx, "1", &[]).await;
        assert!(response.headers().get("link").is_none());
        let (status, body) = parts(&response);
        assert_eq!((status, ids(&body)), (200, vec![1, 5, 9]));
        let first = &body[0];
        for field in [
            "id",
            "user_id",
            "name",
            "group_id",
            "message",
            "can_edit",
            "can_delete",
            "created_at",
        ] {
            assert!(first.get(field).is_some(), "{field} missing in {first}");
        }
        assert!(first.get("edited_at").is_none());
    }

    #[tokio::test]
    async fn a_page_of_long_messages_stays_under_the_byte_bound_and_links_the_rest() {
        let t = context();
        // 600 messages of 4,096 two-byte characters: about 5 MB in all.
        fill_with(t.store.as_ref(), 1, 1..=600, |id| {
            format!("{id}{}", "é".repeat(4090))
        })
        .await;
        let mut seen = Vec::new();
        let mut query = vec![("limit".to_owned(), "1000".to_owned())];
        for _ in 0..10 {
            let q: Vec<(&str, &str)> = query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let response = get(&t.ctx, "1", &q).await;
            let bytes = match response.body() {
                Body::Text(text) => text.len(),
                Body::Binary(bytes) => bytes.len(),
                Body::Empty => 0,
                _ => 0,
            };
            assert!(bytes <= MAX_PAGE_BYTES, "{bytes} bytes");
            let page = ids(&parts(&response).1);
            assert!(!page.is_empty());
            seen.splice(0..0, page);
            let Some(link) = response.headers().get("link") else {
                break;
            };
            let link = link.to_str().expect("ascii");
            let before = link
                .split("before=")
                .nth(1)
                .and_then(|rest| rest.split('&').next())
                .expect("a before cursor");
            query = vec![
                ("limit".to_owned(), "1000".to_owned()),
                ("before".to_owned(), before.to_owned()),
            ];
        }
        assert_eq!(seen, (1..=600).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn an_empty_known_group_is_an_empty_list() {
        let t = context();
        assert_eq!(
            parts(&get(&t.ctx, "2", &[]).await),
            (200, serde_json::json!([]))
        );
    }

    #[tokio::test]
    async fn pages_link_to_the_next_one() {
        let t = context();
        fill(t.store.as_ref(), 1, 1..=7).await;
        let response = get(&t.ctx, "1", &[("limit", "3")]).await;
        assert_eq!(
            response.headers()["link"],
            "</messages/1?before=5&limit=3>; rel=\"next\""
        );
        assert_eq!(ids(&parts(&response).1), vec![5, 6, 7]);
        let response = get(&t.ctx, "1", &[("limit", "3"), ("after", "2")]).await;
        assert_eq!(
            response.headers()["link"],
            "</messages/1?after=5&limit=3>; rel=\"next\""
        );
        assert_eq!(ids(&parts(&response).1), vec![3, 4, 5]);
        let response = get(&t.ctx, "1", &[("limit", "3"), ("before", "3")]).await;
        assert!(response.headers().get("link").is_none());
        assert_eq!(ids(&parts(&response).1), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_page_over_a_long_run_of_deletions_links_past_what_it_read() {
        use chat_core::store::MAX_DELETED_PER_PAGE;
        let t = context();
        let last_deleted = 1 + MAX_DELETED_PER_PAGE as u64 + 50;
        fill(t.store.as_ref(), 1, 1..=last_deleted).await;
        for id in 2..=last_deleted {
            t.store
                .delete_message(
                    GroupId::new(1).expect("id"),
                    MessageId::new(i128::from(id)).expect("id"),
                    Utc::now(),
                )
                .await
                .expect("delete");
        }
        let calls = t.store.calls();
        let response = get(&t.ctx, "1", &[("limit", "10")]).await;
        assert_eq!(t.store.calls() - calls, 2, "the group, then one page read");
        assert_eq!(ids(&parts(&response).1), Vec::<u64>::new());
        let link = response.headers()["link"].to_str().expect("ascii");
        // 11 + MAX_DELETED_PER_PAGE items read, newest first: the next page starts past them.
        let resume = last_deleted - 10 - MAX_DELETED_PER_PAGE as u64;
        assert_eq!(
            link,
            format!("</messages/1?before={resume}&limit=10>; rel=\"next\"")
        );
        let before = resume.to_string();
        let response = get(&t.ctx, "1", &[("limit", "10"), ("before", &before)]).await;
        assert_eq!(ids(&parts(&response).1), vec![1]);
        assert!(response.headers().get("link").is_none());
    }

    #[tokio::test]
    async fn an_unknown_group_is_not_found() {
        let t = context();
        let (status, body) = parts(&get(&t.ctx, "3", &[]).await);
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("group 3 not found"))
        );
    }

    #[tokio::test]
    async fn bad_parameters_are_400s() {
        let t = context();
        for (group, query) in [
            ("abc", vec![]),
            ("0", vec![]),
            ("-1", vec![]),
            ("9007199254740993", vec![]),
            ("1", vec![("limit", "0")]),
            ("1", vec![("limit", "1001")]),
            ("1", vec![("limit", "ten")]),
            ("1", vec![("before", "x")]),
            ("1", vec![("after", "-5")]),
            ("1", vec![("before", "5"), ("after", "1")]),
        ] {
            let (status, body) = parts(&get(&t.ctx, group, &query).await);
            assert_eq!(status, 400, "{group} {query:?}: {body}");
            assert!(body["error"].is_string());
        }
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_is_a_503() {
        let t = context();
        t.store.fail_with(StoreError::Unavailable {
            op: "Query",
            cause: "timeout".into(),
        });
        assert_eq!(get(&t.ctx, "1", &[]).await.status(), 503);
    }

    #[tokio::test]
    async fn only_members_read_a_group() {
        let t = jwt_context();
        let read = |claim: Option<&str>, group: &str, query: &[(&str, &str)]| {
            let r = request(Method::GET, &[("group_id", group)], query, None);
            let r = maybe_signed_in(r, claim);
            let ctx = &t.ctx;
            async move { parts(&reply(handle(ctx, r).await)).0 }
        };
        assert_eq!(read(None, "1", &[]).await, 401);
        assert_eq!(read(Some("1"), "1", &[]).await, 200);
        assert_eq!(
            read(Some("3"), "1", &[]).await,
            404,
            "not theirs: as if none"
        );
        assert_eq!(read(Some("1"), "1", &[("user_id", "3")]).await, 403);
        // A token naming a user the directory lacks.
        assert_eq!(read(Some("99"), "1", &[]).await, 404);
        // Trust-client mode: the original app's open read, or the member check when named.
        let open = context();
        assert_eq!(parts(&get(&open.ctx, "1", &[]).await).0, 200);
        assert_eq!(
            parts(&get(&open.ctx, "1", &[("user_id", "3")]).await).0,
            404
        );
        assert_eq!(
            parts(&get(&open.ctx, "1", &[("user_id", "2")]).await).0,
            200
        );
    }
}
