//! `local-apigw`, the binary: listens where `APIGW_LISTEN` (and `APIGW_JWT_LISTEN`) say and
//! serves [`local_apigw::app`]. See the library for what it does and how it is configured.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use local_apigw::gateway::{Gateway, Settings};

#[tokio::main]
async fn main() {
    chat_lambda::init_logging();
    if let Err(e) = run().await {
        eprintln!("local-apigw: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let listen = std::env::var("APIGW_LISTEN").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let verify = match std::env::var("AUTH_MODE").as_deref() {
        Ok("jwt") | Err(_) => true,
        Ok("trust-client") => false,
        Ok(other) => {
            return Err(format!(
                "AUTH_MODE is `{other}`; use `jwt` or `trust-client`"
            ))
        }
    };
    // Believing the user a request names is for one developer's machine: never on a network.
    if !verify && !local_apigw::is_loopback(&listen) {
        return Err(format!(
            "AUTH_MODE=trust-client believes whoever a request says it is: it listens on \
             loopback only, not on {listen} (use AUTH_MODE=jwt to listen there)"
        ));
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let jwt_listen = std::env::var("APIGW_JWT_LISTEN")
        .ok()
        .filter(|v| !v.is_empty());
    if !verify {
        tracing::warn!(
            "AUTH_MODE=trust-client: identity is NOT verified; any request may act as any \
             user. For local development only."
        );
    }
    let settings = Settings::from_env(verify || jwt_listen.is_some())?;
    let invoke_url = settings.invoke_url.clone();
    let gateway = Arc::new(Gateway::new(settings)?);
    tracing::info!(%listen, invoke = %invoke_url, verify, "local API Gateway listening");
    let mut servers = vec![tokio::spawn(serve(listener, gateway.clone(), verify))];
    if let Some(jwt_listen) = jwt_listen {
        let listener = tokio::net::TcpListener::bind(&jwt_listen)
            .await
            .map_err(|e| format!("cannot listen on {jwt_listen}: {e}"))?;
        tracing::info!(listen = %jwt_listen, "verifying tokens on a second address");
        servers.push(tokio::spawn(serve(listener, gateway, true)));
    }
    for server in servers {
        server.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    verify: bool,
) -> Result<(), String> {
    // Without TCP_NODELAY a reply that spans two segments waits on the client's delayed ACK:
    // +40 ms on every history page of 100 messages.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("local-apigw: cannot set TCP_NODELAY: {e}");
        }
    });
    let app = local_apigw::app(gateway, verify);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .map_err(|e| e.to_string())
}
