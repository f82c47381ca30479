#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(delete_message::context).await?;
    chat_lambda::run_http(ctx, delete_message::handle).await
}
