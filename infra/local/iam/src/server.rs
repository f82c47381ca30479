//! The service in front of DynamoDB Local, and the broker's questions:
//! - `POST /` with `X-Amz-Target: DynamoDB_20120810.<Operation>`: the signature is verified,
//!   every action the request needs is checked, and only then is it passed on to DynamoDB
//!   Local. A refusal is DynamoDB's own error (`AccessDeniedException`, `InvalidSignature...`).
//!   When DynamoDB Local cannot be reached, the connection is dropped, as an unreachable
//!   endpoint would be: the SDK sees the same failure as without this service.
//! - `POST /kafka/authenticate` `{"token"}`: an MSK IAM token's function and expiry, if its
//!   signature holds and the function may `kafka-cluster:Connect`.
//! - `POST /kafka/authorize` `{"principal", "operation", "resource_type", "resource_name"}`:
//!   whether MSK would allow that Kafka operation.
//! - `POST /authorize` `{"function", "action", "resource"}`: any other action (the local
//!   event source checks what Lambda's Kafka trigger needs of its role).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::identity::Identity;
use crate::sigv4::SignedRequest;
use crate::{dynamodb, kafka, Iam};

/// DynamoDB's largest request (a batch of 25 items of 400 KB, or a transaction of 4 MB) with
/// room to spare.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A DynamoDB request refused: DynamoDB's error code and message.
struct DynamoRefusal {
    code: &'static str,
    message: String,
}

/// Why a request's connection is dropped instead of answered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Dropped(String);

pub struct Service {
    iam: Iam,
    /// DynamoDB Local, e.g. `http://127.0.0.1:8101`.
    upstream: String,
    http: reqwest::Client,
}

impl Service {
    pub fn new(iam: Iam, upstream: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            iam,
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
        }
    }

    pub fn iam(&self) -> &Iam {
        &self.iam
    }

    pub async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Dropped> {
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return Ok(dynamodb_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    &e.to_string(),
                ))
            }
        };
        match (parts.method.clone(), parts.uri.path()) {
            (Method::POST, "/kafka/authenticate") => Ok(self.kafka_authenticate(&body)),
            (Method::POST, "/kafka/authorize") => Ok(self.kafka_authorize(&body)),
            (Method::POST, "/authorize") => Ok(self.authorize(&body)),
            _ => self.dynamodb(parts, body).await,
        }
    }

    async fn dynamodb(
        &self,
        parts: hyper::http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, Dropped> {
        let headers = crate::sigv4::header_pairs(&parts.headers);
        if let Err(refusal) = self.check_dynamodb(&parts, &headers, &body) {
            tracing::warn!(code = refusal.code, message = %refusal.message, "refused a DynamoDB call");
            return Ok(dynamodb_error(
                StatusCode::BAD_REQUEST,
                refusal.code,
                &refusal.message,
            ));
        }
        self.forward(&parts, &headers, body).await
    }

    /// The signature, then every action the request needs; DynamoDB's error response if not.
    fn check_dynamodb(
        &self,
        parts: &hyper::http::request::Parts,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), DynamoRefusal> {
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or_default(),
            headers,
            body,
        };
        let refuse = |code: &'static str, message: String| DynamoRefusal { code, message };
        let identity = self
            .iam
            .signer(&signed, "dynamodb")
            .map_err(|r| refuse(r.error_type, r.message))?;
        let operation = headers
            .iter()
            .find(|(k, _)| k == "x-amz-target")
            .and_then(|(_, v)| v.strip_prefix("DynamoDB_20120810."))
            .unwrap_or_default();
        // A body that is not JSON is DynamoDB's to refuse (SerializationException).
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            return Ok(());
        };
        let needed = dynamodb::needed(operation, &json, &self.iam.locals)
            .map_err(|reason| refuse("AccessDeniedException", reason))?;
        for need in needed {
            self.iam
                .authorize(&identity, &need.action, &need.resource)
                .map_err(|r| refuse("AccessDeniedException", r.message))?;
        }
        Ok(())
    }

    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, Dropped> {
        let url = format!(
            "{}{}",
            self.upstream,
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let mut request = self.http.request(parts.method.clone(), &url).body(body);
        for (name, value) in headers {
            match name.as_str() {
                "host" | "connection" | "content-length" | "transfer-encoding" => {}
                // DynamoDB Local takes access keys of letters and digits only, and checks no
                // signature: it gets the administrator's key, the check being done here.
                "authorization" => request = request.header(name, as_administrator(value)),
                _ => request = request.header(name, value),
            }
        }
        let reply = request
            .send()
            .await
            .map_err(|e| Dropped(format!("DynamoDB Local did not answer: {e}")))?;
        let status = reply.status();
        let reply_headers = reply.headers().clone();
        let bytes = reply
            .bytes()
            .await
            .map_err(|e| Dropped(format!("DynamoDB Local's reply broke off: {e}")))?;
        let mut response = Response::new(Full::new(bytes));
        *response.status_mut() = status;
        for (name, value) in &reply_headers {
            if !matches!(
                name.as_str(),
                "connection" | "content-length" | "transfer-encoding"
            ) {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        Ok(response)
    }

    fn kafka_authenticate(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let token = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let signer = match kafka::verify_token(
            &token,
            |k| self.iam.secret_of(k),
            &self.iam.locals,
            Utc::now(),
        ) {
            Ok(signer) => signer,
            Err(e) => {
                tracing::warn!(error = %e, "refused a Kafka connection");
                return json_reply(StatusCode::UNAUTHORIZED, json!({"error": e.to_string()}));
            }
        };
        let Some((identity, _)) = self.iam.identity_of(&signer.access_key) else {
            return json_reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "unknown access key"}),
            );
        };
        let cluster = self.iam.locals.cluster_arn();
        if let Err(refusal) = self
            .iam
            .authorize(&identity, "kafka-cluster:Connect", &cluster)
        {
            return json_reply(StatusCode::UNAUTHORIZED, json!({"error": refusal.message}));
        }
        json_reply(
            StatusCode::OK,
            json!({
                "principal": principal_name(&identity),
                "expires_at_ms": signer.expires_at.timestamp_millis(),
            }),
        )
    }

    fn kafka_authorize(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let Ok(question) = serde_json::from_slice::<Value>(body) else {
            return json_reply(StatusCode::BAD_REQUEST, json!({"error": "not JSON"}));
        };
        let field = |k: &str| question.get(k).and_then(Value::as_str).unwrap_or_default();
        let identity = identity_named(field("principal"));
        let allowed = match kafka::action_for(
            field("operation"),
            field("resource_type"),
            field("resource_name"),
            &self.iam.locals,
        ) {
            Some((action, resource)) => self.iam.authorize(&identity, &action, &resource).is_ok(),
            // What MSK's IAM access control never grants a client (cluster-internal actions).
            None => identity == Identity::Admin,
        };
        json_reply(StatusCode::OK, json!({ "allowed": allowed }))
    }

    fn authorize(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let Ok(question) = serde_json::from_slice::<Value>(body) else {
            return json_reply(StatusCode::BAD_REQUEST, json!({"error": "not JSON"}));
        };
        let field = |k: &str| question.get(k).and_then(Value::as_str).unwrap_or_default();
        let identity = identity_named(field("function"));
        match self
            .iam
            .authorize(&identity, field("action"), field("resource"))
        {
            Ok(()) => json_reply(StatusCode::OK, json!({"allowed": true})),
            Err(refusal) => json_reply(
                StatusCode::OK,
                json!({"allowed": false, "message": refusal.message}),
            ),
        }
    }
}

/// `Authorization` with the administrator's access key in its credential scope.
fn as_administrator(authorization: &str) -> String {
    match authorization.split_once("Credential=") {
        Some((before, after)) => match after.split_once('/') {
            Some((_, scope)) => {
                format!("{before}Credential={}/{scope}", crate::identity::ADMIN_KEY)
            }
            None => authorization.to_owned(),
        },
        None => authorization.to_owned(),
    }
}

/// How the broker names a principal: the function, or `admin`.
fn principal_name(identity: &Identity) -> String {
    match identity {
        Identity::Admin => "admin".into(),
        Identity::Function(f) => f.clone(),
    }
}

fn identity_named(name: &str) -> Identity {
    if name == "admin" {
        Identity::Admin
    } else {
        Identity::Function(name.to_owned())
    }
}

fn json_reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error as DynamoDB answers it (awsJson1.0: the type in `__type`).
pub fn dynamodb_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "__type": format!("com.amazon.coral.service#{code}"),
        "Message": message,
    });
    let mut response = json_reply(status, body);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(id) = HeaderValue::from_str(&uuid_like()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    response
}

fn uuid_like() -> String {
    format!(
        "local-{}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

/// Serves `service` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, service: Arc<Service>) {
    loop {
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request| {
                let service = service.clone();
                async move { service.handle(request).await }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, handler)
                .await
            {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}
