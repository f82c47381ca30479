#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    let ctx = shared::lambda::start(shared::Kafka::NotUsed).await?;
    shared::lambda::run_ws(ctx, ws_disconnect::handle).await
}
