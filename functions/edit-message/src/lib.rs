//! `PUT /edit-message/{message_id}`: `user_id` and `new_text` as query parameters (as the
//! original app took them) or in a JSON body. Only the author may edit, and only with
//! `can_edit`; the change is published as a `message_edited` event for the stream processor.

use chat_core::domain::{Change, MessageId, MessageText, UserId};
use chat_core::events::ChatEvent;
use chat_core::guard::admit;
use chat_core::guard::{authorize_change, ChangeContext};
use chat_core::limits::Action;
use chat_core::publish::PublishError;
use chat_core::ChatError;
use chat_lambda::http::{
    json_body, optional_query_or_body, parse_query, path_param, publish_accepted, query_or_body,
    query_param, refuse_query_parameters_unless, require_method,
};
use chat_lambda::identity::acting_user;
use chrono::Utc;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

#[derive(Deserialize, Default)]
struct EditRequest {
    #[serde(default)]
    user_id: Option<UserId>,
    #[serde(default)]
    new_text: Option<MessageText>,
}

/// What the function holds for its life: the directory and the messages, read only, and the
/// log.
pub type Context = ChangeContext;

/// Over the DynamoDB store and the Kafka producer.
pub async fn context(config: chat_core::Config) -> Result<Context, PublishError> {
    let store = chat_store::DynamoStore::from_config(&config.dynamodb).await;
    let publisher = chat_kafka::KafkaPublisher::new(&config.kafka)?;
    Ok(Context::new(
        &config,
        std::sync::Arc::new(store),
        std::sync::Arc::new(publisher),
    ))
}

pub async fn handle(ctx: &Context, request: Request) -> Result<Response<Body>, ChatError> {
    let request = &request;
    require_method(request, &Method::PUT)?;
    let message_id: MessageId = path_param(request, "message_id")?;
    refuse_query_parameters_unless(ctx.query_parameters, request, &["user_id", "new_text"])?;
    let body: EditRequest = json_body(request)?.unwrap_or_default();
    let named = optional_query_or_body("user_id", parse_query(request, "user_id")?, body.user_id)?;
    let user_id = acting_user(&ctx.auth, request, named)?;
    admit(ctx.limiter.as_ref(), &ctx.limits, user_id, Action::Edit).await?;
    let query_text = query_param(request, "new_text")
        .map(MessageText::new)
        .transpose()?;
    let new_text = query_or_body("new_text", query_text, body.new_text)?;
    let message = authorize_change(ctx, message_id, user_id, Change::Edit).await?;
    let event = ChatEvent::MessageEdited {
        message_id,
        group_id: message.group_id,
        user_id,
        new_text,
        edited_at: Utc::now(),
    };
    publish_accepted(
        ctx.publisher.as_ref(),
        &ctx.chat_topic,
        &event,
        "Message edited",
        message_id,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::domain::GroupId;
    use chat_core::events::IncomingEvent;
    use chat_core::store::DirectoryWriter;
    use chat_core::store::MessageWriter;
    use chat_testkit::requests::{maybe_signed_in, reply, request, seed_messages};
    use chat_testkit::{Fakes, Fallible, TestContext};

    fn over(fakes: Fakes) -> TestContext<Context> {
        fakes.with(|f| Context::new(&f.config, f.store.clone(), f.publisher.clone()))
    }

    fn context() -> TestContext<Context> {
        over(Fakes::trust_client())
    }

    async fn put(
        ctx: &Context,
        id: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        reply(
            handle(
                ctx,
                request(Method::PUT, &[("message_id", id)], query, body),
            )
            .await,
        )
    }

    #[tokio::test]
    async fn the_author_edits_with_query_parameters_as_in_the_original() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        let (status, body) = put(
            &t.ctx,
            "10",
            &[("user_id", "1"), ("new_text", "fixed")],
            None,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(
            body,
            serde_json::json!({"status": "Message edited", "message_id": 10})
        );
        let records = t.publisher.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key, "1");
        match IncomingEvent::decode(&records[0].payload).expect("decodes") {
            IncomingEvent::Event(ChatEvent::MessageEdited {
                message_id,
                group_id,
                new_text,
                ..
            }) => {
                assert_eq!(
                    (message_id.get(), group_id, new_text.as_str()),
                    (10, GroupId::new(1).expect("id"), "fixed")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_author_edits_with_a_json_body() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        let (status, _) = put(
            &t.ctx,
            "30",
            &[],
            Some(r#"{"user_id": 3, "new_text": "via body"}"#),
        )
        .await;
        assert_eq!(status, 202);
        let (status, _) = put(
            &t.ctx,
            "30",
            &[("user_id", "3")],
            Some(r#"{"new_text": "mixed"}"#),
        )
        .await;
        assert_eq!(status, 202);
    }

    #[tokio::test]
    async fn every_seed_user_may_edit_only_their_own_messages() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        for editor in 1..=4u64 {
            for author in 1..=4u64 {
                let (status, body) = put(
                    &t.ctx,
                    &(author * 10).to_string(),
                    &[("user_id", &editor.to_string()), ("new_text", "x")],
                    None,
                )
                .await;
                // Another group's message is not there, for this user.
                let same_group = editor.div_ceil(2) == author.div_ceil(2);
                let expected = match (editor == author, same_group) {
                    (true, _) => 202,
                    (false, true) => 403,
                    (false, false) => 404,
                };
                assert_eq!(
                    status, expected,
                    "user {editor} editing {author}'s message: {body}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_user_without_can_edit_is_forbidden() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        let mut alice = chat_core::compat::seed_users()[0].clone();
        alice.can_edit = false;
        t.store.put_user(&alice).await.expect("put");
        let (status, body) = put(&t.ctx, "10", &[("user_id", "1"), ("new_text", "x")], None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("user 1 may not edit messages"))
        );
        assert!(t.publisher.records().is_empty());
    }

    #[tokio::test]
    async fn unknown_or_deleted_messages_and_unknown_users_are_not_found() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        t.store
            .delete_message(
                GroupId::new(1).expect("id"),
                MessageId::new(20).expect("id"),
                Utc::now(),
            )
            .await
            .expect("delete");
        for (id, user, why) in [
            ("11", "1", "message 11 does not exist"),
            ("20", "2", "message 20 was deleted"),
            ("10", "77", "user 77 does not exist"),
        ] {
            let (status, body) =
                put(&t.ctx, id, &[("user_id", user), ("new_text", "x")], None).await;
            assert_eq!((status, body["error"].as_str()), (404, Some(why)));
        }
    }

    #[tokio::test]
    async fn bad_input_is_a_400() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        let long = "y".repeat(4097);
        for (id, query, body) in [
            ("abc", vec![("user_id", "1"), ("new_text", "x")], None),
            ("10", vec![("new_text", "x")], None),
            ("10", vec![("user_id", "1")], None),
            ("10", vec![("user_id", "one"), ("new_text", "x")], None),
            ("10", vec![("user_id", "1"), ("new_text", "  ")], None),
            (
                "10",
                vec![("user_id", "1"), ("new_text", long.as_str())],
                None,
            ),
            (
                "10",
                vec![("user_id", "1")],
                Some(r#"{"user_id": 2, "new_text": "x"}"#),
            ),
            ("10", vec![], Some(r#"{"user_id": 1, "new_text": 5}"#)),
            ("10", vec![], Some("{nope")),
        ] {
            let (status, reply) = put(&t.ctx, id, &query, body).await;
            assert_eq!(status, 400, "{id} {query:?} {body:?}: {reply}");
        }
        assert!(t.publisher.records().is_empty());
    }

    #[tokio::test]
    async fn a_broker_that_does_not_answer_is_a_503() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        t.publisher
            .fail_with(PublishError::Unavailable("down".into()));
        let (status, _) = put(&t.ctx, "10", &[("user_id", "1"), ("new_text", "x")], None).await;
        assert_eq!(status, 503);
    }

    /// Publishes a record the stream processor has not stored: in the log, not in the table.
    async fn in_the_log_only(t: &TestContext<Context>) -> MessageId {
        use chat_core::publish::Publisher;
        let at = t
            .publisher
            .publish("chat-events", "1", b"{}")
            .await
            .expect("publish");
        MessageId::from_coordinates(at).expect("id")
    }

    async fn edit_as_alice(t: &TestContext<Context>, id: MessageId) -> Response<Body> {
        chat_lambda::http::reply(
            handle(
                &t.ctx,
                request(
                    Method::PUT,
                    &[("message_id", &id.to_string())],
                    &[("user_id", "1"), ("new_text", "x")],
                    None,
                ),
            )
            .await,
        )
    }

    #[tokio::test]
    async fn a_message_in_the_log_but_not_yet_stored_is_a_409_to_retry_at_a_bounded_cost() {
        static QUICK: [std::time::Duration; 2] = [
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(20),
        ];
        let mut t = context();
        t.ctx.store_rechecks = &QUICK;
        let id = in_the_log_only(&t).await;
        let calls = t.store.calls();
        let response = edit_as_alice(&t, id).await;
        assert_eq!(response.status(), 409);
        assert_eq!(response.headers()["retry-after"], "1");
        // The rate limit's bucket, the user, then per look the group's key and the id index.
        let budget = 2 + 2 * (1 + QUICK.len());
        assert!(
            t.store.calls() - calls <= budget,
            "{} store calls, at most {budget}",
            t.store.calls() - calls
        );
        assert!(t.publisher.records().len() == 1, "nothing published");
    }

    #[tokio::test]
    async fn a_message_stored_while_the_edit_looks_again_is_edited() {
        let t = context();
        let id = in_the_log_only(&t).await;
        let store = t.store.clone();
        let stored = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let alice = &chat_core::compat::seed_users()[0];
            let message = chat_core::domain::Message {
                id,
                user_id: alice.user_id,
                name: alice.name.clone(),
                group_id: alice.group_id,
                message: chat_core::domain::MessageText::new("just sent").expect("text"),
                can_edit: true,
                can_delete: true,
                created_at: chrono::Utc::now(),
                edited_at: None,
            };
            store.insert_message(&message).await.expect("insert")
        });
        assert_eq!(edit_as_alice(&t, id).await.status(), 202);
        assert!(stored.await.expect("task"));
    }

    #[tokio::test]
    async fn with_identity_only_the_tokens_user_edits_and_other_groups_see_nothing() {
        let t = over(Fakes::jwt());
        seed_messages(t.store.as_ref()).await;
        let edit = |claim: Option<&str>, id: &str, query: &[(&str, &str)]| {
            let r = request(Method::PUT, &[("message_id", id)], query, None);
            let r = maybe_signed_in(r, claim);
            let ctx = &t.ctx;
            async move { reply(handle(ctx, r).await) }
        };
        let text = ("new_text", "x");
        assert_eq!(edit(None, "10", &[("user_id", "1"), text]).await.0, 401);
        assert_eq!(edit(Some("1"), "10", &[text]).await.0, 202);
        assert_eq!(
            edit(Some("2"), "10", &[("user_id", "1"), text]).await.0,
            403
        );
        assert_eq!(edit(Some("2"), "10", &[text]).await.0, 403);
        let (status, body) = edit(Some("3"), "10", &[text]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("message 10 does not exist"))
        );
    }

    #[tokio::test]
    async fn with_query_parameters_turned_off_only_the_json_body_is_read() {
        let mut t = context();
        t.ctx.query_parameters = false;
        seed_messages(t.store.as_ref()).await;
        let (status, body) = put(&t.ctx, "10", &[("user_id", "1"), ("new_text", "x")], None).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]
            .as_str()
            .is_some_and(|e| e.contains("COMPAT_OFF=query-parameters")));
        let (status, _) = put(
            &t.ctx,
            "10",
            &[],
            Some(r#"{"user_id": 1, "new_text": "x"}"#),
        )
        .await;
        assert_eq!(status, 202);
        assert_eq!(t.publisher.records().len(), 1);
    }
}
