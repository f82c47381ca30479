#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let processor = chat_lambda::start(kafka_consumer::Processor::from_config).await?;
    chat_lambda::run_event(processor, kafka_consumer::Processor::handle).await
}
