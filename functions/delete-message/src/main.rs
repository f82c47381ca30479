#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    let ctx = shared::lambda::start(shared::Kafka::Publishes).await?;
    shared::lambda::run_http(ctx, delete_message::handle).await
}
