#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let ctx = shared::http::start(shared::context::Kafka::NotUsed).await?;
    lambda_http::run(lambda_http::service_fn(|req| {
        get_messages::handle(&ctx, req)
    }))
    .await
}
