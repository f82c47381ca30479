#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ctx = shared::http::start(shared::context::Kafka::NotUsed).await?;
    lambda_runtime::run(lambda_runtime::service_fn(|event| {
        ws_default::handle(&ctx, event)
    }))
    .await
}
