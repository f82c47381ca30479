#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(ws_default::Context::from_config).await?;
    chat_lambda::run_ws(ctx, ws_default::handle).await
}
