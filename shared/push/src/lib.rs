//! Pushing frames to WebSocket connections through the API Gateway Management API
//! (`POST /{stage}/@connections/{id}`): only the stream processor pushes, and ws-connect
//! closes sockets.

use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use chat_core::push::{PushError, Pusher};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};

/// What a connection id keeps of itself in a URL path: unreserved characters (RFC 3986); the
/// rest (`=`, `+`, `/` of API Gateway's ids) percent-encoded, as the AWS SDK encodes it.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Credentials are fetched again when they expire within this margin.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// The Management API's client: SigV4-signed HTTP requests (`execute-api`) over one pooled
/// HTTP client, one attempt each (the fan-out retries).
///
/// Not the AWS SDK's client: its per-call machinery (interceptors, config layers, identity
/// resolution, retry bookkeeping) cost about 0.4 ms of CPU per push in the stream processor,
/// which pushes one call per frame per connection; the signing is the SDK's own (`aws-sigv4`).
pub struct ApiGatewayPusher {
    http: reqwest::Client,
    /// The stage's URL, without a trailing slash.
    endpoint: String,
    region: String,
    provider: SharedCredentialsProvider,
    credentials: RwLock<Option<Credentials>>,
}

impl ApiGatewayPusher {
    /// A client of the Management API at `endpoint` (the WebSocket stage's URL, or the local
    /// emulator's), bounded by `timeout` per call, with the SDK's credentials (see
    /// [`chat_aws::sdk_config`]).
    pub async fn new(endpoint: &str, region: &str, timeout: Duration) -> Self {
        let sdk = chat_aws::sdk_config(region, timeout).await;
        let provider = sdk.credentials_provider().unwrap_or_else(|| {
            SharedCredentialsProvider::new(Credentials::new(
                "local",
                "local",
                None,
                None,
                "local-services",
            ))
        });
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1).min(timeout))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            provider,
            credentials: RwLock::new(None),
        }
    }

    /// The client of the configured Management API (`WS_MANAGEMENT_ENDPOINT`), or `None` when
    /// none is configured.
    pub async fn from_config(config: &chat_core::Config) -> Option<Self> {
        let endpoint = config.ws_management_endpoint.as_deref()?;
        Some(Self::new(endpoint, &config.dynamodb.region, config.push_timeout).await)
    }

    /// [`Self::from_config`] as the port functions hold.
    pub async fn port_from_config(
        config: &chat_core::Config,
    ) -> Option<std::sync::Arc<dyn chat_core::push::Pusher>> {
        let pusher = Self::from_config(config).await?;
        Some(std::sync::Arc::new(pusher))
    }

    /// The URL of a connection's resource.
    pub fn connection_url(&self, connection_id: &str) -> String {
        format!(
            "{}/@connections/{}",
            self.endpoint,
            utf8_percent_encode(connection_id, PATH_SEGMENT)
        )
    }

    /// Credentials, fetched once and again shortly before they expire.
    async fn credentials(&self) -> Result<Credentials, PushError> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + CREDENTIALS_MARGIN)
        };
        if let Some(c) = self
            .credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| fresh(c))
        {
            return Ok(c.clone());
        }
        let c = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| PushError::Unavailable(format!("no AWS credentials: {e}")))?;
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Sends one signed call; its status, or why there is none.
    async fn call(
        &self,
        method: Method,
        connection_id: &str,
        body: &[u8],
    ) -> Result<StatusCode, PushError> {
        let url = self.connection_url(connection_id);
        let identity = self.credentials().await?.into();
        let unavailable = |e: &dyn std::fmt::Display| PushError::Unavailable(e.to_string());
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| unavailable(&e))?
            .into();
        let content_type = [("content-type", "application/octet-stream")];
        let headers = if body.is_empty() {
            &[][..]
        } else {
            &content_type[..]
        };
        let signable = SignableRequest::new(
            method.as_str(),
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| unavailable(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| unavailable(&e))?
            .into_parts();
        let mut request = self.http.request(method, &url);
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        if !body.is_empty() {
            request = request.body(body.to_vec());
        }
        let reply = request
            .send()
            .await
            .map_err(|e| PushError::Unavailable(chat_aws::error_chain(&e)))?;
        let status = reply.status();
        if status.is_success() || status == StatusCode::GONE {
            return Ok(status);
        }
        let text = reply.text().await.unwrap_or_default();
        Err(PushError::Unavailable(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        )))
    }
}

#[async_trait]
impl Pusher for ApiGatewayPusher {
    async fn push(&self, connection_id: &str, frame: &[u8]) -> Result<(), PushError> {
        match self.call(Method::POST, connection_id, frame).await? {
            StatusCode::GONE => Err(PushError::Gone),
            _ => {
                chat_core::usage::websocket_frame(frame.len());
                Ok(())
            }
        }
    }

    async fn disconnect(&self, connection_id: &str) -> Result<(), PushError> {
        self.call(Method::DELETE, connection_id, &[])
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP server on loopback that answers every request with `status` and keeps each
    /// request's head and body.
    async fn recorder(status: u16) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/stage", listener.local_addr().expect("addr"));
        let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let kept = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let text = String::from_utf8_lossy(&buffer).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if buffer.len() >= end + 4 + length {
                                kept.lock().expect("lock").push(text);
                                let reply =
                                    format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\n{{}}");
                                if socket.write_all(reply.as_bytes()).await.is_err() {
                                    return;
                                }
                                buffer.clear();
                                continue;
                            }
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_push_is_a_signed_post_to_the_connections_encoded_path() {
        let (url, seen) = recorder(200).await;
        let pusher =
            ApiGatewayPusher::new(&format!("{url}/"), "eu-west-1", Duration::from_secs(2)).await;
        pusher.push("ab=+/c", b"{\"x\":1}").await.expect("pushed");
        let request = seen.lock().expect("lock")[0].clone();
        let lower = request.to_ascii_lowercase();
        assert!(
            request.starts_with("POST /stage/@connections/ab%3D%2B%2Fc HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            lower.contains("content-type: application/octet-stream"),
            "{request}"
        );
        let authorization = lower
            .lines()
            .find(|l| l.starts_with("authorization: aws4-hmac-sha256 credential="))
            .unwrap_or_else(|| panic!("unsigned: {request}"));
        assert!(
            authorization.contains("/eu-west-1/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(
            authorization.contains("signedheaders=content-type;host;x-amz-date"),
            "{authorization}"
        );
        assert!(request.ends_with("{\"x\":1}"), "{request}");
    }

    #[tokio::test]
    async fn statuses_map_to_outcomes_and_a_dead_endpoint_is_unavailable() {
        let (gone, _) = recorder(410).await;
        let pusher = ApiGatewayPusher::new(&gone, "us-east-1", Duration::from_secs(2)).await;
        assert_eq!(pusher.push("c1", b"{}").await, Err(PushError::Gone));
        assert_eq!(
            pusher.disconnect("c1").await,
            Ok(()),
            "closing a closed one is no error"
        );
        let (busy, seen) = recorder(429).await;
        let pusher = ApiGatewayPusher::new(&busy, "us-east-1", Duration::from_secs(2)).await;
        assert!(
            matches!(pusher.push("c1", b"{}").await, Err(PushError::Unavailable(why)) if why.starts_with("429"))
        );
        assert!(matches!(
            pusher.disconnect("c1").await,
            Err(PushError::Unavailable(_))
        ));
        assert!(seen.lock().expect("lock")[1].starts_with("DELETE /stage/@connections/c1 "));
        let (ok, _) = recorder(204).await;
        let pusher = ApiGatewayPusher::new(&ok, "us-east-1", Duration::from_secs(2)).await;
        assert_eq!(pusher.disconnect("c1").await, Ok(()));
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let dead = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let pusher = ApiGatewayPusher::new(&dead, "us-east-1", Duration::from_secs(2)).await;
        assert!(matches!(
            pusher.push("c1", b"{}").await,
            Err(PushError::Unavailable(_))
        ));
    }
}
