#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    let ctx = shared::lambda::start(shared::Kafka::Publishes).await?;
    let processor = kafka_consumer::Processor::new(ctx).await;
    shared::lambda::run_kafka(processor, kafka_consumer::Processor::handle).await
}
