#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(ws_authorize::Context::from_config).await?;
    ws_authorize::run(ctx).await
}
