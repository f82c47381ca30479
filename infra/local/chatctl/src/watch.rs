//! A group's WebSocket in the terminal, as a browser client of the chat gets it.

/// Prints the frames of a group's WebSocket, as a browser client of the chat would get them.
pub async fn watch(group: &str, url: &str, count: Option<u64>) -> Result<(), String> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let base = url.trim_end_matches('/');
    let url = format!("{base}/subscribe/{group}");
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                format!(
                    "{url} refused the subscription: {} {body}",
                    response.status()
                )
            }
            other => format!("cannot reach {url} ({other}); is `make dev` running?"),
        })?;
    eprintln!("subscribed to group {group} at {url}; Ctrl-C stops");
    let mut seen = 0u64;
    while count.is_none_or(|n| seen < n) {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                println!("{text}");
                seen += 1;
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("the server closed the socket: {frame:?}"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the socket ended".into()),
        }
    }
    Ok(())
}
