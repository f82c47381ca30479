#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let ctx = shared::http::start(shared::context::Kafka::Publishes).await?;
    lambda_http::run(lambda_http::service_fn(|req| {
        delete_message::handle(&ctx, req)
    }))
    .await
}
