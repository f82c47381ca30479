#[tokio::main]
async fn main() {
    chat_lambda::init_logging();
    let result = match local_kafka_esm::Settings::from_env() {
        Ok(settings) => local_kafka_esm::run_until_stopped(settings).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("local-kafka-esm: {e}");
        std::process::exit(1);
    }
}
