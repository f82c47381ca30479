#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(sign_up::Context::from_config).await?;
    chat_lambda::run_event(ctx, sign_up::handle).await
}
