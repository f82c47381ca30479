#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(groups::Context::from_config).await?;
    chat_lambda::run_http(ctx, groups::handle).await
}
