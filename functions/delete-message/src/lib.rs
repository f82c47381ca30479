//! `DELETE /delete-message/{message_id}?user_id=...` (or `user_id` in a JSON body). Only the
//! author may delete, and only with `can_delete`; the change is published as a
//! `message_deleted` event for the stream processor.

use chat_core::domain::{Change, MessageId, UserId};
use chat_core::events::ChatEvent;
use chat_core::guard::admit;
use chat_core::guard::{authorize_change, ChangeContext};
use chat_core::limits::Action;
use chat_core::publish::PublishError;
use chat_core::ChatError;
use chat_lambda::http::{
    json_body, optional_query_or_body, parse_query, path_param, publish_accepted,
    refuse_query_parameters_unless, require_method,
};
use chat_lambda::identity::acting_user;
use chrono::Utc;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

#[derive(Deserialize, Default)]
struct DeleteRequest {
    #[serde(default)]
    user_id: Option<UserId>,
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
    require_method(request, &Method::DELETE)?;
    let message_id: MessageId = path_param(request, "message_id")?;
    refuse_query_parameters_unless(ctx.query_parameters, request, &["user_id"])?;
    let body: DeleteRequest = json_body(request)?.unwrap_or_default();
    let named = optional_query_or_body("user_id", parse_query(request, "user_id")?, body.user_id)?;
    let user_id = acting_user(&ctx.auth, request, named)?;
    admit(ctx.limiter.as_ref(), &ctx.limits, user_id, Action::Delete).await?;
    let message = authorize_change(ctx, message_id, user_id, Change::Delete).await?;
    let event = ChatEvent::MessageDeleted {
        message_id,
        group_id: message.group_id,
        user_id,
        deleted_at: Utc::now(),
    };
    publish_accepted(
        ctx.publisher.as_ref(),
        &ctx.chat_topic,
        &event,
        "Message deleted",
        message_id,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::domain::GroupId;
    use chat_core::events::IncomingEvent;
    use chat_core::store::MessageWriter;
    use chat_core::store::StoreError;
    use chat_testkit::requests::{maybe_signed_in, reply, request, seed_messages};
    use chat_testkit::{Fakes, Fallible, TestContext};

    fn over(fakes: Fakes) -> TestContext<Context> {
        fakes.with(|f| Context::new(&f.config, f.store.clone(), f.publisher.clone()))
    }

    fn context() -> TestContext<Context> {
        over(Fakes::trust_client())
    }

    async fn delete(
        ctx: &Context,
        id: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        reply(
            handle(
                ctx,
                request(Method::DELETE, &[("message_id", id)], query, body),
            )
            .await,
        )
    }

    #[tokio::test]
    async fn an_author_with_can_delete_deletes_as_in_the_original() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        let (status, body) = delete(&t.ctx, "20", &[("user_id", "2")], None).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(
            body,
            serde_json::json!({"status": "Message deleted", "message_id": 20})
        );
        let records = t.publisher.records();
        match IncomingEvent::decode(&records[0].payload).expect("decodes") {
            IncomingEvent::Event(ChatEvent::MessageDeleted {
                message_id,
                group_id,
                user_id,
                ..
            }) => {
                assert_eq!(
                    (message_id.get(), group_id.get(), user_id.get()),
                    (20, 1, 2)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let (status, _) = delete(&t.ctx, "40", &[], Some(r#"{"user_id": 4}"#)).await;
        assert_eq!(status, 202);
    }

    #[tokio::test]
    async fn only_bob_and_david_may_delete_and_only_their_own() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        for deleter in 1..=4u64 {
            for author in 1..=4u64 {
                let (status, body) = delete(
                    &t.ctx,
                    &(author * 10).to_string(),
                    &[("user_id", &deleter.to_string())],
                    None,
                )
                .await;
                let may_delete = deleter == 2 || deleter == 4;
                let same_group = deleter.div_ceil(2) == author.div_ceil(2);
                let expected = if deleter == author && may_delete {
                    202
                } else if same_group {
                    403
                } else {
                    404
                };
                assert_eq!(
                    status, expected,
                    "user {deleter} deleting {author}'s message: {body}"
                );
            }
        }
        let (_, body) = delete(&t.ctx, "10", &[("user_id", "1")], None).await;
        assert_eq!(body["error"], "user 1 may not delete messages");
    }

    #[tokio::test]
    async fn missing_or_malformed_user_is_a_400_and_unknowns_are_404() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        for (id, query) in [
            ("20", vec![]),
            ("20", vec![("user_id", "-2")]),
            ("x", vec![("user_id", "2")]),
        ] {
            assert_eq!(
                delete(&t.ctx, id, &query, None).await.0,
                400,
                "{id} {query:?}"
            );
        }
        assert_eq!(delete(&t.ctx, "21", &[("user_id", "2")], None).await.0, 404);
        assert_eq!(delete(&t.ctx, "20", &[("user_id", "9")], None).await.0, 404);
        t.store
            .delete_message(
                GroupId::new(1).expect("id"),
                MessageId::new(20).expect("id"),
                Utc::now(),
            )
            .await
            .expect("delete");
        assert_eq!(delete(&t.ctx, "20", &[("user_id", "2")], None).await.0, 404);
    }

    #[tokio::test]
    async fn unavailable_services_are_503s() {
        let t = context();
        seed_messages(t.store.as_ref()).await;
        t.publisher
            .fail_with(PublishError::Unavailable("down".into()));
        assert_eq!(delete(&t.ctx, "20", &[("user_id", "2")], None).await.0, 503);
        t.store.fail_with(StoreError::Unavailable {
            op: "Query",
            cause: "down".into(),
        });
        assert_eq!(delete(&t.ctx, "20", &[("user_id", "2")], None).await.0, 503);
    }

    #[tokio::test]
    async fn with_identity_only_the_tokens_user_deletes_and_other_groups_see_nothing() {
        let t = over(Fakes::jwt());
        seed_messages(t.store.as_ref()).await;
        let delete = |claim: Option<&str>, id: &str, query: &[(&str, &str)]| {
            let r = request(Method::DELETE, &[("message_id", id)], query, None);
            let r = maybe_signed_in(r, claim);
            let ctx = &t.ctx;
            async move { reply(handle(ctx, r).await).0 }
        };
        assert_eq!(delete(None, "20", &[("user_id", "2")]).await, 401);
        assert_eq!(delete(Some("1"), "20", &[("user_id", "2")]).await, 403);
        assert_eq!(delete(Some("4"), "20", &[]).await, 404);
        assert_eq!(delete(Some("2"), "20", &[]).await, 202);
    }

    #[tokio::test]
    async fn with_query_parameters_turned_off_only_the_json_body_is_read() {
        let mut t = context();
        t.ctx.query_parameters = false;
        seed_messages(t.store.as_ref()).await;
        let (status, body) = delete(&t.ctx, "20", &[("user_id", "2")], None).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]
            .as_str()
            .is_some_and(|e| e.contains("COMPAT_OFF=query-parameters")));
        let (status, _) = delete(&t.ctx, "20", &[], Some(r#"{"user_id": 2}"#)).await;
        assert_eq!(status, 202);
        assert_eq!(t.publisher.records().len(), 1);
    }
}
