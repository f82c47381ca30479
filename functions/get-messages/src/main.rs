#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(get_messages::Context::from_config).await?;
    chat_lambda::run_http(ctx, get_messages::handle).await
}
