//! `chatctl smoke`: a deployed stack proves itself. A black-box run of what a user does, over
//! the public API only (HTTP and WebSocket, TLS where the URLs say so), with the ID tokens of
//! two users of one group: A sends, edits and deletes; B subscribes and receives. Impersonation
//! and a foreign group must be refused. One line per check; what it created is deleted at the
//! end, whatever failed. `make test` runs it against its own stack in `jwt` mode, and
//! `make smoke` against `make dev` or a deployed stack (docs/deploy.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// How long a frame or a stored message may take to arrive.
const WAIT: Duration = Duration::from_secs(15);

/// Where the stack is and who uses it.
pub struct Target {
    /// The HTTP API's base URL (`HttpApiUrl`, or the local gateway).
    pub api: String,
    /// The WebSocket API's URL (`WebSocketUrl`, or `ws://127.0.0.1:8000`).
    pub websocket: String,
    /// ID tokens of two users of one group; A may edit and delete its messages.
    pub token_a: String,
    pub token_b: String,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Run {
    http: reqwest::Client,
    target: Target,
    passed: usize,
    failed: usize,
}

/// A user as the tokens and the directory name them.
#[derive(Clone, Copy)]
struct User {
    id: u64,
    group: u64,
    can_edit: bool,
    can_delete: bool,
}

pub async fn smoke(target: Target) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut run = Run {
        http,
        target,
        passed: 0,
        failed: 0,
    };
    let mut created = None;
    let outcome = run.checks(&mut created).await;
    if let Some(id) = created {
        // Whatever failed, the message goes (A may delete its own).
        let (status, _) = run
            .call(
                Method::DELETE,
                &format!("/delete-message/{id}"),
                Some(&run.target.token_a.clone()),
                None,
            )
            .await
            .unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, Value::Null));
        let gone = status == StatusCode::ACCEPTED || status == StatusCode::NOT_FOUND;
        run.report("clean-up", gone, format!("message {id}: {status}"));
    }
    if let Err(stopped) = outcome {
        run.report("stopped", false, stopped);
    }
    println!(
        "smoke: {} passed, {} failed against {}",
        run.passed, run.failed, run.target.api
    );
    if run.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} check(s) failed", run.failed))
    }
}

impl Run {
    fn report(&mut self, check: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            println!("ok    {check:<28} {detail}");
        } else {
            self.failed += 1;
            println!("FAIL  {check:<28} {detail}");
        }
    }

    /// A check that must pass for the next ones to mean anything.
    fn require(
        &mut self,
        check: &str,
        ok: bool,
        detail: impl std::fmt::Display,
    ) -> Result<(), String> {
        let text = detail.to_string();
        self.report(check, ok, &text);
        if ok {
            Ok(())
        } else {
            Err(format!("{check} failed: the checks after it need it"))
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), String> {
        let url = format!("{}{path}", self.target.api.trim_end_matches('/'));
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = reply.status();
        let text = reply.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn checks(&mut self, created: &mut Option<u64>) -> Result<(), String> {
        let (token_a, token_b) = (self.target.token_a.clone(), self.target.token_b.clone());
        let (status, _) = self.call(Method::GET, "/users", None, None).await?;
        self.require(
            "no token, no entry",
            status == StatusCode::UNAUTHORIZED,
            format!("GET /users without a token: {status} (a stack that believes requests is not one to smoke-test: AUTH_MODE=jwt)"),
        )?;
        let (status, directory) = self
            .call(Method::GET, "/users", Some(&token_a), None)
            .await?;
        let users = directory_users(&directory);
        let a = user_of(&token_a, &users)?;
        let b = user_of(&token_b, &users)?;
        self.require(
            "directory",
            status == StatusCode::OK && a.group == b.group && a.id != b.id && a.can_edit && a.can_delete,
            format!(
                "{status}: A is user {} (group {}, edit {}, delete {}), B is user {} (group {}); A and B must be two users of one group, and A may edit and delete",
                a.id, a.group, a.can_edit, a.can_delete, b.id, b.group
            ),
        )?;
        let group = a.group;
        let mut socket = self.subscribe(group, &token_b).await?;
        let marker = format!("smoke-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let (status, sent) = self
            .call(
                Method::POST,
                "/send-message",
                Some(&token_a),
                Some(json!({"message": format!("{marker} hello"), "client_message_id": marker})),
            )
            .await?;
        let id = sent["message_id"].as_u64();
        *created = id;
        self.require(
            "send",
            status == StatusCode::ACCEPTED
                && id.is_some()
                && sent["group_id"].as_u64() == Some(group),
            format!("{status} {sent}"),
        )?;
        let id = id.unwrap_or_default();
        let frame = next_frame(&mut socket, id, "created").await;
        self.report(
            "receive",
            frame.is_ok(),
            match &frame {
                Ok(_) => format!(
                    "B got message {id} live, {} ms after the send",
                    started.elapsed().as_millis()
                ),
                Err(e) => e.clone(),
            },
        );
        let text = format!("{marker} hello");
        let stored = self
            .wait_history(group, id, &token_a, "in the history", |m| {
                m.is_some_and(|m| m["message"].as_str() == Some(text.as_str()))
            })
            .await;
        self.report(
            "history",
            stored.is_ok(),
            stored
                .err()
                .unwrap_or_else(|| format!("message {id} is in group {group}'s history")),
        );
        let (status, reply) = self
            .call(
                Method::PUT,
                &format!("/edit-message/{id}"),
                Some(&token_a),
                Some(json!({"new_text": format!("{marker} edited")})),
            )
            .await?;
        let edited =
            status == StatusCode::ACCEPTED && next_frame(&mut socket, id, "edited").await.is_ok();
        self.report(
            "edit",
            edited,
            format!("{status} {reply}; B got the edit: {edited}"),
        );
        let (status, reply) = self
            .call(
                Method::POST,
                "/send-message",
                Some(&token_a),
                Some(json!({"user_id": b.id, "message": "not mine to send"})),
            )
            .await?;
        self.report(
            "impersonation refused",
            status == StatusCode::FORBIDDEN,
            format!("A sending as user {}: {status} {reply}", b.id),
        );
        let foreign = users
            .values()
            .map(|u| u.group)
            .find(|g| *g != group)
            .unwrap_or(group + 1_000_000);
        let (read, _) = self
            .call(
                Method::GET,
                &format!("/messages/{foreign}"),
                Some(&token_a),
                None,
            )
            .await?;
        let (post, _) = self
            .call(
                Method::POST,
                "/send-message",
                Some(&token_a),
                Some(json!({"group_id": foreign, "message": "not my group"})),
            )
            .await?;
        let refused = |s: StatusCode| s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND;
        self.report(
            "foreign group refused",
            refused(read) && refused(post),
            format!("group {foreign}: read {read}, send {post}"),
        );
        let (status, _) = self
            .call(
                Method::DELETE,
                &format!("/delete-message/{id}"),
                Some(&token_b),
                None,
            )
            .await?;
        self.report(
            "others' message kept",
            status == StatusCode::FORBIDDEN,
            format!("B deleting A's message: {status}"),
        );
        let (status, reply) = self
            .call(
                Method::DELETE,
                &format!("/delete-message/{id}"),
                Some(&token_a),
                None,
            )
            .await?;
        let deleted =
            status == StatusCode::ACCEPTED && next_frame(&mut socket, id, "deleted").await.is_ok();
        self.report(
            "delete",
            deleted,
            format!("{status} {reply}; B got the deletion: {deleted}"),
        );
        if deleted {
            *created = None;
            let gone = self
                .wait_history(group, id, &token_a, "gone from the history", |m| {
                    m.is_none()
                })
                .await;
            self.report(
                "deleted from history",
                gone.is_ok(),
                gone.err()
                    .unwrap_or_else(|| format!("message {id} no longer listed")),
            );
        }
        let _ = socket.close(None).await;
        Ok(())
    }

    async fn subscribe(&mut self, group: u64, token: &str) -> Result<Socket, String> {
        let base = self.target.websocket.trim_end_matches('/');
        // The request line needs a path: `ws://host:port` is `ws://host:port/`.
        let base = match base.split_once("://") {
            Some((scheme, rest)) if !rest.contains('/') => format!("{scheme}://{rest}/"),
            _ => base.to_owned(),
        };
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}group_id={group}&token={token}");
        let shown = format!("{base}{separator}group_id={group}&token=…");
        match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => {
                self.report(
                    "subscribe",
                    true,
                    format!("B's socket on group {group} at {shown}"),
                );
                Ok(socket)
            }
            Err(e) => {
                let why = match e {
                    tokio_tungstenite::tungstenite::Error::Http(response) => {
                        format!("refused: {}", response.status())
                    }
                    other => other.to_string(),
                };
                self.require("subscribe", false, format!("{shown}: {why}"))?;
                Err(why)
            }
        }
    }

    /// Polls the group's history at `id` until `done` holds of the message as listed (or
    /// of its absence); `what` says what was awaited.
    async fn wait_history(
        &self,
        group: u64,
        id: u64,
        token: &str,
        what: &str,
        done: impl Fn(Option<&Value>) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, page) = self
                .call(
                    Method::GET,
                    &format!("/messages/{group}?after={}", id - 1),
                    Some(token),
                    None,
                )
                .await?;
            let listed = page
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["id"].as_u64() == Some(id));
            if status == StatusCode::OK && done(listed) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "message {id}: {what} not seen within {WAIT:?} ({status})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The next frame about message `id` with `event`, skipping the group's other traffic.
async fn next_frame(socket: &mut Socket, id: u64, event: &str) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| format!("no {event} frame for message {id} within {WAIT:?}"))?;
        match next {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if frame["id"].as_u64() == Some(id) && frame["event"].as_str() == Some(event) {
                    return Ok(frame);
                }
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("the socket closed: {frame:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the socket ended".into()),
        }
    }
}

/// The directory's users by id.
fn directory_users(directory: &Value) -> BTreeMap<u64, User> {
    directory
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            Some(User {
                id: u["user_id"].as_u64()?,
                group: u["group_id"].as_u64()?,
                can_edit: u["can_edit"].as_bool().unwrap_or(false),
                can_delete: u["can_delete"].as_bool().unwrap_or(false),
            })
        })
        .map(|u| (u.id, u))
        .collect()
}

/// The directory's entry of a token's user (its `custom:user_id` claim; the token's signature
/// is the API's to check).
fn user_of(token: &str, users: &BTreeMap<u64, User>) -> Result<User, String> {
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .ok_or("a token is not a JWT")?;
    let id = match &payload["custom:user_id"] {
        Value::String(s) => s.parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .ok_or("a token has no custom:user_id claim")?;
    users
        .get(&id)
        .copied()
        .ok_or_else(|| format!("user {id} of a token is not in the directory (GET /users)"))
}

/// `chatctl login`: signs in to a Cognito user pool's app client with the password (the
/// USER_PASSWORD_AUTH flow docs/deploy.md gives) and returns the ID token. `AWS_ENDPOINT_URL`
/// points it at another Cognito (the tests' emulated one).
pub async fn login(
    client_id: &str,
    username: &str,
    password: &str,
    region: &str,
) -> Result<String, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("https://cognito-idp.{region}.amazonaws.com"));
    let reply = reqwest::Client::new()
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .body(
            json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": client_id,
                "AuthParameters": {"USERNAME": username, "PASSWORD": password},
            })
            .to_string(),
        )
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("cannot reach Cognito at {endpoint}: {e}"))?;
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    if let Some(token) = body["AuthenticationResult"]["IdToken"].as_str() {
        return Ok(token.to_owned());
    }
    if let Some(challenge) = body["ChallengeName"].as_str() {
        return Err(format!(
            "Cognito asks for {challenge} first (a temporary password: set a permanent one with admin-set-user-password --permanent)"
        ));
    }
    Err(format!(
        "sign-in refused ({status}): {}",
        body["message"]
            .as_str()
            .or(body["__type"].as_str())
            .unwrap_or("no reason given")
    ))
}
