//! `POST /send-message/`: checks the sender and publishes a `message_sent` event to the chat
//! topic, keyed by group. The message id comes from where the record landed in Kafka, so the
//! reply can name it before the stream processor has stored the message.

use std::sync::Arc;
use std::time::Duration;

use chat_core::config::{AuthConfig, Config};
use chat_core::domain::{GroupId, MessageId, MessageText, UserId, ValidationError};
use chat_core::events::ChatEvent;
use chat_core::guard::admit;
use chat_core::guard::{existing_group, recent_user, require_membership};
use chat_core::idempotency::send_once;
use chat_core::limits::{Action, RateLimits, RefusalMemory};
use chat_core::publish::{publish_event, PublishError, Publisher};
use chat_core::store::RateLimiter;
use chat_core::store::{Directory, SendClaims, SendKey};
use chat_core::trace::{self, Trace};
use chat_core::{ChatError, KnownUsers};
use chat_lambda::http::{json, json_body, require_method};
use chat_lambda::identity::acting_user;
use chrono::Utc;
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

/// Longest idempotency key a client may choose.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 128;

#[derive(Deserialize)]
struct SendRequest {
    /// Optional with a token (it must then name the caller); required without one.
    #[serde(default)]
    user_id: Option<UserId>,
    message: MessageText,
    #[serde(default)]
    group_id: Option<GroupId>,
    #[serde(default)]
    client_message_id: Option<String>,
}

/// What the function holds for its life: the directory (read), the send claims, and the log.
#[derive(Clone)]
pub struct Context {
    pub auth: AuthConfig,
    pub chat_topic: String,
    /// Bounds a publish; a claim's lease follows from it.
    pub kafka_timeout: Duration,
    pub directory: Arc<dyn Directory>,
    pub claims: Arc<dyn SendClaims>,
    pub publisher: Arc<dyn Publisher>,
    /// Users read recently, for the hot path of a send (see [`KnownUsers`]).
    pub known_users: Arc<KnownUsers>,
    /// The per-user buckets, and how full they may be.
    pub limiter: Arc<dyn RateLimiter>,
    pub limits: RateLimits,
}

impl Context {
    /// Over the DynamoDB store and the Kafka producer (which connects on first use, so that a
    /// cold start does not wait on the network).
    pub async fn from_config(config: Config) -> Result<Self, PublishError> {
        let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
        let publisher = chat_kafka::KafkaPublisher::new(&config.kafka)?;
        Ok(Self::new(&config, Arc::new(store), Arc::new(publisher)))
    }

    pub fn new<S: Directory + SendClaims + RateLimiter + 'static>(
        config: &Config,
        store: Arc<S>,
        publisher: Arc<dyn Publisher>,
    ) -> Self {
        Self {
            auth: config.auth.clone(),
            chat_topic: config.kafka.chat_topic.clone(),
            kafka_timeout: config.kafka.timeout,
            directory: store.clone(),
            claims: store.clone(),
            publisher,
            known_users: Arc::default(),
            limiter: Arc::new(RefusalMemory::new(store)),
            limits: config.limits,
        }
    }
}

pub async fn handle(ctx: &Context, request: Request) -> Result<Response<Body>, ChatError> {
    let mut trace = request
        .headers()
        .contains_key(trace::REQUEST_HEADER)
        .then(|| Trace::start("received"));
    require_method(&request, &Method::POST)?;
    let body: SendRequest = json_body(&request)?.ok_or_else(|| {
        ChatError::BadRequest("a JSON body with user_id and message is required".into())
    })?;
    let user_id = acting_user(&ctx.auth, &request, body.user_id)?;
    admit(ctx.limiter.as_ref(), &ctx.limits, user_id, Action::Send).await?;
    if let Some(trace) = &mut trace {
        trace.stamp("admitted");
    }
    let client_message_id = body.client_message_id.map(client_message_id).transpose()?;
    // The directory changes rarely and by hand; the stream processor checks the sender again.
    let user = recent_user(&ctx.known_users, ctx.directory.as_ref(), user_id).await?;
    let group_id = match body.group_id {
        None => user.group_id,
        Some(group_id) => {
            existing_group(ctx.directory.as_ref(), group_id)
                .await?
                .group_id
        }
    };
    // Read consistently: a member removed a moment ago can no longer send here.
    require_membership(ctx.directory.as_ref(), user.user_id, group_id).await?;
    let event = ChatEvent::MessageSent {
        group_id,
        user_id: user.user_id,
        message: body.message,
        client_message_id: client_message_id.clone(),
        sent_at: Utc::now(),
    };
    if let Some(trace) = &mut trace {
        trace.stamp("checked");
    }
    let publish = || async { Ok((group_id, publish(ctx, &event, trace.as_ref()).await?)) };
    let (group_id, message_id) = match client_message_id {
        None => publish().await?,
        Some(id) => {
            let key = SendKey {
                user_id: user.user_id,
                client_message_id: id,
            };
            // What the key stands for: a retry must send the same message to the same group.
            let fingerprint = format!("{group_id}\u{1f}{}", event_text(&event));
            let timeout = ctx.kafka_timeout;
            send_once(ctx.claims.as_ref(), &key, &fingerprint, timeout, publish).await?
        }
    };
    let mut response = json(
        StatusCode::ACCEPTED,
        &serde_json::json!({
            "status": "Message sent",
            "group_id": group_id,
            "message_id": message_id,
        }),
    );
    if let Some(trace) = &mut trace {
        trace.stamp("acked");
        if let Ok(value) = HeaderValue::from_str(&trace.to_header()) {
            response.headers_mut().insert(trace::REQUEST_HEADER, value);
        }
    }
    Ok(response)
}

fn client_message_id(id: String) -> Result<String, ChatError> {
    let chars = id.chars().count();
    if id.trim().is_empty()
        || chars > MAX_CLIENT_MESSAGE_ID_CHARS
        || id.chars().any(char::is_control)
    {
        return Err(ValidationError(format!(
            "client_message_id must be 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} printable characters"
        ))
        .into());
    }
    Ok(id)
}

async fn publish(
    ctx: &Context,
    event: &ChatEvent,
    trace: Option<&Trace>,
) -> Result<MessageId, PublishError> {
    let at = publish_event(ctx.publisher.as_ref(), &ctx.chat_topic, event, trace).await?;
    MessageId::from_coordinates(at).map_err(|e| PublishError::Rejected(e.to_string()))
}

fn event_text(event: &ChatEvent) -> &str {
    match event {
        ChatEvent::MessageSent { message, .. } => message.as_str(),
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::events::IncomingEvent;
    use chat_core::store::{SendClaim, StoreError};
    use chat_lambda::http::reply;
    use chat_testkit::requests::{maybe_signed_in, parts, request};
    use chat_testkit::{Fakes, Fallible, TestContext};

    fn over(fakes: Fakes) -> TestContext<Context> {
        fakes.with(|f| Context::new(&f.config, f.store.clone(), f.publisher.clone()))
    }

    fn context() -> TestContext<Context> {
        over(Fakes::trust_client())
    }

    async fn post(ctx: &Context, body: &str) -> (u16, serde_json::Value) {
        parts(&reply(
            handle(ctx, request(Method::POST, &[], &[], Some(body))).await,
        ))
    }

    #[tokio::test]
    async fn a_user_over_the_send_limit_is_told_when_to_retry_and_others_are_not_held_back() {
        let t = context();
        let burst = t.ctx.limits.send.burst;
        for n in 0..burst {
            let (status, body) = post(&t.ctx, r#"{"user_id": 3, "message": "flood"}"#).await;
            assert_eq!(status, 202, "send {n}: {body}");
        }
        let refused = reply(
            handle(
                &t.ctx,
                request(
                    Method::POST,
                    &[],
                    &[],
                    Some(r#"{"user_id": 3, "message": "one too many"}"#),
                ),
            )
            .await,
        );
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "1");
        let (_, body) = parts(&refused);
        assert!(body["error"].as_str().is_some_and(|e| e.contains("send")));
        assert_eq!(
            t.publisher.records().len(),
            burst as usize,
            "nothing of it published"
        );
        let (status, _) = post(&t.ctx, r#"{"user_id": 4, "message": "meanwhile"}"#).await;
        assert_eq!(status, 202, "another user has a bucket of their own");
    }

    #[tokio::test]
    async fn a_send_in_the_original_shape_publishes_to_the_senders_group() {
        let t = context();
        let (status, body) = post(&t.ctx, r#"{"user_id": 3, "message": "Hello!"}"#).await;
        assert_eq!(status, 202);
        assert_eq!(body["status"], "Message sent");
        assert_eq!(body["group_id"], 2);
        let records = t.publisher.records();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].topic.as_str(), records[0].key.as_str()),
            ("chat-events", "2")
        );
        let id = MessageId::from_coordinates(records[0].at).expect("id");
        assert_eq!(body["message_id"], id.get());
        match IncomingEvent::decode(&records[0].payload).expect("decodes") {
            IncomingEvent::Event(ChatEvent::MessageSent {
                user_id, message, ..
            }) => {
                assert_eq!((user_id.get(), message.as_str()), (3, "Hello!"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_traced_send_stamps_its_record_and_its_reply_and_others_stay_plain() {
        let t = context();
        let mut traced = request(
            Method::POST,
            &[],
            &[],
            Some(r#"{"user_id": 3, "message": "traced"}"#),
        );
        traced
            .headers_mut()
            .insert(trace::REQUEST_HEADER, HeaderValue::from_static("1"));
        let response = handle(&t.ctx, traced).await.expect("sent");
        assert_eq!(response.status(), 202);
        let reply = Trace::parse(
            response.headers()[trace::REQUEST_HEADER]
                .to_str()
                .expect("text"),
        );
        let stamps = ["received", "admitted", "checked", "acked"].map(|name| reply.get(name));
        assert!(
            stamps.iter().all(Option::is_some) && stamps.is_sorted(),
            "{reply:?}"
        );
        let received = stamps[0];
        let plain = handle(
            &t.ctx,
            request(
                Method::POST,
                &[],
                &[],
                Some(r#"{"user_id": 3, "message": "plain"}"#),
            ),
        )
        .await
        .expect("sent");
        assert!(!plain.headers().contains_key(trace::REQUEST_HEADER));
        let records = t.publisher.records();
        let header = records[0].trace.as_deref().map(Trace::parse);
        assert_eq!(header.and_then(|h| h.get("received")), received);
        assert_eq!(records[1].trace, None);
    }

    #[tokio::test]
    async fn an_explicit_group_must_be_one_of_the_users() {
        let t = context();
        let (status, body) = post(&t.ctx, r#"{"user_id": 1, "message": "x", "group_id": 1}"#).await;
        assert_eq!((status, body["group_id"].as_u64()), (202, Some(1)));
        let (status, body) = post(&t.ctx, r#"{"user_id": 1, "message": "x", "group_id": 2}"#).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"], "group 2 not found");
        let (status, unknown) =
            post(&t.ctx, r#"{"user_id": 1, "message": "x", "group_id": 9}"#).await;
        assert_eq!(status, 404);
        // A group of others and one that does not exist answer alike.
        assert_eq!(unknown["error"], "group 9 not found");
        assert_eq!(t.publisher.records().len(), 1);
    }

    #[tokio::test]
    async fn an_unknown_user_is_not_found() {
        let t = context();
        let (status, body) = post(&t.ctx, r#"{"user_id": 99, "message": "hi"}"#).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("user 99 does not exist"))
        );
        assert!(t.publisher.records().is_empty());
    }

    #[tokio::test]
    async fn bad_input_is_a_400_that_says_what_is_wrong() {
        let t = context();
        let long = format!(r#"{{"user_id": 1, "message": "{}"}}"#, "a".repeat(4097));
        let cases = [
            ("", "JSON body with user_id and message is required"),
            ("{", "invalid JSON body"),
            ("[]", "invalid JSON body"),
            (r#"{"message": "hi"}"#, "user_id is required"),
            (r#"{"user_id": 1}"#, "missing field `message`"),
            (r#"{"user_id": "1", "message": "hi"}"#, "user_id"),
            (r#"{"user_id": 0, "message": "hi"}"#, "user_id must be"),
            (r#"{"user_id": -1, "message": "hi"}"#, "user_id must be"),
            (r#"{"user_id": 1e3, "message": "hi"}"#, "user_id"),
            (
                r#"{"user_id": 99999999999999999999, "message": "hi"}"#,
                "user_id",
            ),
            (r#"{"user_id": 1, "message": "   "}"#, "must not be empty"),
            (r#"{"user_id": 1, "message": null}"#, "invalid type: null"),
            (r#"{"user_id": 1, "message": "a\u0000b"}"#, "U+0000"),
            (long.as_str(), "limit is 4096"),
            (
                r#"{"user_id": 1, "message": "x", "client_message_id": ""}"#,
                "client_message_id",
            ),
        ];
        for (body, why) in cases {
            let (status, reply) = post(&t.ctx, body).await;
            assert_eq!(status, 400, "{body}: {reply}");
            let error = reply["error"].as_str().unwrap_or_default();
            assert!(error.contains(why), "{body}: {error} should mention {why}");
        }
        assert!(t.publisher.records().is_empty());
    }

    #[tokio::test]
    async fn a_retried_send_with_one_client_message_id_makes_one_message() {
        let t = context();
        let body = r#"{"user_id": 2, "message": "once", "client_message_id": "abc-1"}"#;
        let (first_status, first) = post(&t.ctx, body).await;
        let (second_status, second) = post(&t.ctx, body).await;
        assert_eq!((first_status, second_status), (202, 202));
        assert_eq!(first["message_id"], second["message_id"]);
        assert_eq!(t.publisher.records().len(), 1);
        // Another user's identical key is another send.
        let (_, other) = post(
            &t.ctx,
            r#"{"user_id": 1, "message": "once", "client_message_id": "abc-1"}"#,
        )
        .await;
        assert_ne!(other["message_id"], first["message_id"]);
    }

    #[tokio::test]
    async fn concurrent_sends_with_one_client_message_id_make_one_message() {
        let t = context();
        let body = r#"{"user_id": 4, "message": "race", "client_message_id": "k"}"#;
        let replies = send_concurrently(&t.ctx, body, 10).await;
        assert!(replies
            .iter()
            .all(|(s, r)| *s == 202 && r["message_id"] == replies[0].1["message_id"]));
        assert_eq!(t.publisher.records().len(), 1);
    }

    async fn send_concurrently(
        ctx: &Context,
        body: &str,
        n: usize,
    ) -> Vec<(u16, serde_json::Value)> {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (ctx, body) = (ctx.clone(), body.to_owned());
            set.spawn(async move { post(&ctx, &body).await });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.expect("task"));
        }
        out
    }

    fn key(user: u64, id: &str) -> SendKey {
        SendKey {
            user_id: UserId::new(i128::from(user)).expect("id"),
            client_message_id: id.into(),
        }
    }

    async fn claim(t: &TestContext<Context>, key: &SendKey, fingerprint: &str) -> SendClaim {
        t.store
            .claim_send(key, fingerprint, Utc::now(), chrono::Duration::seconds(60))
            .await
            .expect("claim")
    }

    #[tokio::test]
    async fn a_broker_that_does_not_answer_is_a_503_and_the_send_stays_claimed() {
        let t = context();
        t.publisher
            .fail_with(PublishError::Unavailable("timed out".into()));
        let body = r#"{"user_id": 1, "message": "hi", "client_message_id": "r"}"#;
        let response = reply(handle(&t.ctx, request(Method::POST, &[], &[], Some(body))).await);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        // The record may be in the log: until the stream processor records it or the lease
        // runs out, no retry may publish it again.
        assert_eq!(
            claim(&t, &key(1, "r"), "1\u{1f}hi").await,
            SendClaim::InProgress
        );
    }

    #[tokio::test]
    async fn a_publish_the_broker_refused_releases_the_claim() {
        let t = context();
        t.publisher
            .fail_with(PublishError::Rejected("record too large".into()));
        let (status, _) = post(
            &t.ctx,
            r#"{"user_id": 1, "message": "hi", "client_message_id": "q"}"#,
        )
        .await;
        assert!(status >= 500, "{status}");
        assert_eq!(
            claim(&t, &key(1, "q"), "1\u{1f}hi").await,
            SendClaim::Claimed
        );
    }

    #[tokio::test]
    async fn one_client_message_id_with_another_message_is_a_422() {
        let t = context();
        let first = r#"{"user_id": 2, "message": "one", "client_message_id": "same"}"#;
        let (status, _) = post(&t.ctx, first).await;
        assert_eq!(status, 202);
        let other = r#"{"user_id": 2, "message": "two", "client_message_id": "same"}"#;
        let (status, body) = post(&t.ctx, other).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["error"]
            .as_str()
            .is_some_and(|e| e.contains("already used for another message")));
        assert_eq!(t.publisher.records().len(), 1);
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_is_a_503() {
        let t = context();
        t.store.fail_with(StoreError::Unavailable {
            op: "GetItem",
            cause: "timeout".into(),
        });
        let (status, body) = post(&t.ctx, r#"{"user_id": 1, "message": "hi"}"#).await;
        assert_eq!(status, 503);
        assert_eq!(
            body["error"],
            "DynamoDB is temporarily unavailable; retry shortly"
        );
    }

    #[tokio::test]
    async fn other_methods_and_media_types_are_refused() {
        let t = context();
        let response = reply(handle(&t.ctx, request(Method::GET, &[], &[], None)).await);
        assert_eq!(response.status(), 405);
        let mut form = request(Method::POST, &[], &[], Some("user_id=1&message=hi"));
        form.headers_mut().insert(
            "content-type",
            lambda_http::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(reply(handle(&t.ctx, form).await).status(), 415);
    }

    #[tokio::test]
    async fn with_identity_on_the_token_decides_who_sends() {
        let t = over(Fakes::jwt());
        let send = |claim: Option<&str>, body: &str| {
            let r = request(Method::POST, &[], &[], Some(body));
            let r = maybe_signed_in(r, claim);
            let ctx = &t.ctx;
            async move { parts(&reply(handle(ctx, r).await)) }
        };
        let (status, body) = send(None, r#"{"user_id": 1, "message": "x"}"#).await;
        assert_eq!(status, 401, "{body}");
        let (status, body) = send(Some("3"), r#"{"message": "hi"}"#).await;
        assert_eq!(
            (status, body["group_id"].as_u64()),
            (202, Some(2)),
            "{body}"
        );
        let (status, body) = send(Some("3"), r#"{"user_id": 3, "message": "hi"}"#).await;
        assert_eq!(status, 202, "{body}");
        // Posting as Bob with Charlie's token.
        let (status, body) = send(Some("3"), r#"{"user_id": 2, "message": "x"}"#).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = send(Some("3"), r#"{"message": "x", "group_id": 1}"#).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(t.publisher.records().len(), 2);
    }
}
