#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(ws_disconnect::Context::from_config).await?;
    chat_lambda::run_ws(ctx, ws_disconnect::handle).await
}
