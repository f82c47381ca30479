#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(list_users::Context::from_config).await?;
    chat_lambda::run_http(ctx, list_users::handle).await
}
