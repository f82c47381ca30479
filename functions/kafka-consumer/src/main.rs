#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::init_tracing();
    let processor = kafka_consumer::Processor::from_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(|event| processor.handle(event))).await
}
