#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), chat_lambda::Error> {
    let ctx = chat_lambda::start(edit_message::context).await?;
    chat_lambda::run_http(ctx, edit_message::handle).await
}
