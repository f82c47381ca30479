#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    let ctx = shared::lambda::start(shared::Kafka::NotUsed).await?;
    ws_authorize::run(ctx).await
}
