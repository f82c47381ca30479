//! The pusher's contract (`chat_testkit::contract::push`) against real sockets: clients of the
//! local API Gateway's WebSocket API, reached through the Management API by the stream
//! processor's client (`chat_push::ApiGatewayPusher`), SigV4-signed and checked by local IAM.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_core::store::ConnectionReader;
use chat_push::ApiGatewayPusher;
use chat_testkit::contract::push::{Sockets, QUIET};
use chat_testkit::services::require_env;
use e2e_tests::{config, fresh_group, store, subscribe, Socket};
use futures_util::StreamExt;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

struct RealSockets {
    pusher: ApiGatewayPusher,
    clients: Mutex<HashMap<String, Socket>>,
}

async fn sockets() -> RealSockets {
    let config = config();
    RealSockets {
        pusher: ApiGatewayPusher::new(
            &require_env("WS_MANAGEMENT_ENDPOINT"),
            &config.dynamodb.region,
            Duration::from_secs(3),
        )
        .await,
        clients: Mutex::default(),
    }
}

#[async_trait]
impl Sockets for RealSockets {
    type Pusher = ApiGatewayPusher;

    fn pusher(&self) -> &ApiGatewayPusher {
        &self.pusher
    }

    /// A socket of a group of its own: the one connection the group has is its.
    async fn open(&self) -> String {
        let store = store().await;
        let group = fresh_group(&store).await;
        let socket = subscribe(&format!("/?group_id={group}")).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let id = loop {
            let found = store.connections_for_group(group).await.expect("query");
            if let Some(connection) = found.first() {
                break connection.connection_id.clone();
            }
            assert!(Instant::now() < deadline, "$connect stored no connection");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.clients.lock().await.insert(id.clone(), socket);
        id
    }

    async fn received(&self, connection_id: &str, count: usize) -> Vec<Vec<u8>> {
        let mut clients = self.clients.lock().await;
        let socket = clients.get_mut(connection_id).expect("a socket of ours");
        let mut frames = Vec::new();
        let wait = if count == 0 {
            QUIET
        } else {
            Duration::from_secs(5)
        };
        let deadline = tokio::time::Instant::now() + wait;
        while frames.len() < count {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => frames.push(text.as_bytes().to_vec()),
                Ok(Some(Ok(Message::Binary(bytes)))) => frames.push(bytes.to_vec()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) | Err(_) => break,
            }
        }
        // What arrives soon after the expected frames counts too: nothing more must.
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(QUIET, socket.next()).await
        {
            frames.push(text.as_bytes().to_vec());
        }
        frames
    }

    async fn closed(&self, connection_id: &str) -> bool {
        let mut clients = self.clients.lock().await;
        let socket = clients.get_mut(connection_id).expect("a socket of ours");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return true,
                Ok(Some(Ok(_))) => {}
                Err(_) => return false,
            }
        }
    }
}

chat_testkit::push_contract!(sockets());
