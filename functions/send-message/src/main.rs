#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(send_message::Context::from_config).await?;
    chat_lambda::run_http(ctx, send_message::handle).await
}
