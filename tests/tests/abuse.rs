//! What a web page or a signed-in user may try against the local stack, and how it is refused
//! (black box: through the gateway and DynamoDB Local as a browser or a client reaches them).
//! - A page of another site posting JSON as `text/plain`, a form, multipart or an untyped
//!   blob (what a browser sends cross-origin without asking first): `415`, nothing stored, on
//!   the trust-client address and the token-verifying one alike.
//! - A page of another site opening a WebSocket: refused before `$connect` runs.
//! - A page of another site calling DynamoDB Local: no CORS grant.
//! - One user flooding sends and edits while another chats: the flood is refused beyond the
//!   user's limits, the other user's sends stay within twice their quiet p50 and p99 (and a
//!   small floor for noise), nothing accepted is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_core::limits::{Action, Limit};
use chat_testkit::services::require_env;
use e2e_tests::{
    api_url, eventually, fresh_user, history, http, jwt_api_url, local_issuer, ws_url,
};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_TYPE, ORIGIN};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

/// What a browser sends to another origin without a preflight: every type but JSON's.
const SIMPLE_TYPES: [Option<&str>; 5] = [
    None,
    Some("text/plain"),
    Some("text/plain;charset=UTF-8"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=xyz"),
];

#[tokio::test]
async fn json_posted_as_a_page_of_another_site_can_is_refused_and_nothing_is_stored() {
    let user = fresh_user(true).await;
    let token = local_issuer().token(user.user_id, Duration::from_secs(3600));
    let drive_by = format!("drive-by {}", uuid::Uuid::new_v4());
    for (base, token) in [(api_url(), None), (jwt_api_url(), Some(token.as_str()))] {
        for content_type in SIMPLE_TYPES {
            for (method, path) in [
                (reqwest::Method::POST, "/send-message/".to_owned()),
                (reqwest::Method::POST, "/groups".to_owned()),
                (reqwest::Method::PUT, "/edit-message/1".to_owned()),
            ] {
                let body = json!({"user_id": user.user_id, "message": drive_by,
                                  "name": drive_by, "new_text": drive_by});
                let mut request = http()
                    .request(method.clone(), format!("{base}{path}"))
                    .header(ORIGIN, "https://evil.example")
                    .body(body.to_string());
                if let Some(content_type) = content_type {
                    request = request.header(CONTENT_TYPE, content_type);
                }
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.expect("request");
                let status = response.status().as_u16();
                let reply: serde_json::Value = response.json().await.unwrap_or_default();
                assert_eq!(
                    status, 415,
                    "{method} {base}{path} as {content_type:?}: {reply}"
                );
                assert!(reply["error"].as_str().is_some_and(|e| e.contains("JSON")));
            }
        }
    }
    // The same body declared JSON goes through; nothing of the refused ones was stored.
    let marker = format!("marker {}", uuid::Uuid::new_v4());
    let sent = http()
        .post(format!("{}/send-message/", api_url()))
        .json(&json!({"user_id": user.user_id, "message": marker}))
        .send()
        .await
        .expect("send");
    assert_eq!(sent.status().as_u16(), 202);
    eventually("the marker is stored", || async {
        history(user.group_id)
            .await
            .iter()
            .any(|m| m.message.as_str() == marker)
    })
    .await;
    assert!(history(user.group_id)
        .await
        .iter()
        .all(|m| m.message.as_str() != drive_by));
}

/// The handshake's status with `origin` (`None`: no Origin header, as a non-browser client).
async fn handshake(path: &str, origin: Option<&str>) -> u16 {
    let mut request = ws_url(path).into_client_request().expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake: {e}"),
    }
}

#[tokio::test]
async fn only_the_gateways_own_page_opens_sockets_from_a_browser() {
    let own = api_url();
    let path = "/?group_id=1";
    assert_eq!(handshake(path, Some("https://evil.example")).await, 403);
    assert_eq!(handshake(path, Some("null")).await, 403, "a sandboxed page");
    assert_eq!(handshake(path, Some(&own)).await, 101, "the page at {own}");
    assert_eq!(
        handshake(path, None).await,
        101,
        "a client that is not a browser"
    );
}

#[tokio::test]
async fn dynamodb_local_grants_no_web_page_cross_origin_access() {
    let endpoint = require_env("CHAT_DYNAMODB_LOCAL_ENDPOINT");
    let preflight = http()
        .request(reqwest::Method::OPTIONS, &endpoint)
        .header(ORIGIN, "https://evil.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-amz-target,authorization",
        )
        .send()
        .await
        .expect("preflight");
    let granted = preflight
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        granted != "*" && granted != "https://evil.example",
        "DynamoDB Local let another site's page in: {granted:?}"
    );
}

/// A client as a chat page or a script keeps: one, its connections kept alive, the API's
/// address found once. (A client made for each request cost the test more CPU than the
/// stack's answers, and the other user's timings measured that.)
struct Client {
    http: reqwest::Client,
    api: String,
}

impl Client {
    fn new() -> Self {
        Self {
            http: http(),
            api: api_url(),
        }
    }
}

/// One send by `user` through the trust-client address: its status, `Retry-After`, and how
/// long the answer took.
async fn timed_send(client: &Client, user: u64, text: &str) -> (u16, Option<String>, Duration) {
    let started = std::time::Instant::now();
    let reply = client
        .http
        .post(format!("{}/send-message/", client.api))
        .json(&json!({"user_id": user, "message": text}))
        .send()
        .await
        .expect("send");
    let retry_after = reply
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (reply.status().as_u16(), retry_after, started.elapsed())
}

/// At most this many sends, and as many edits, in the flood (it ends with the other user's
/// chat, well past any test stack's burst).
const FLOOD_MOST: usize = 20_000;

/// Requests in flight at once from the flooding user.
const FLOOD_WIDTH: usize = 3;

/// An edit by `user` of a message that does not exist (an id far past the log's end): its
/// status.
async fn timed_edit(client: &Client, user: u64, text: &str) -> u16 {
    client
        .http
        .put(format!("{}/edit-message/4503599627370497", client.api))
        .json(&json!({"user_id": user, "new_text": text}))
        .send()
        .await
        .expect("edit")
        .status()
        .as_u16()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len());
    sorted[at - 1]
}

/// The chatter's sends, one after another: their latencies, sorted; every one must be taken.
async fn chat(client: &Client, user: u64, tag: &str, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for n in 0..count {
        let (status, _, took) = timed_send(client, user, &format!("{tag} {n}")).await;
        assert_eq!(status, 202, "the chatter's send {n} ({tag})");
        latencies.push(took);
        // A person's pace, well within the limit.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    latencies.sort();
    latencies
}

/// Clears its flag when dropped, a panic's unwinding included.
struct EndsOnDrop(Arc<AtomicBool>);

impl Drop for EndsOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_flood_from_one_user_is_refused_costs_the_others_little_and_loses_nothing() {
    let (flooder, chatter) = (fresh_user(true).await, fresh_user(true).await);
    let (f, c) = (flooder.user_id.get(), chatter.user_id.get());
    // The other user chats from a thread and runtime of their own, so that their timings are
    // the stack's answers, not a wait for the flood's tasks on the test's runtime.
    let chatting = Arc::new(AtomicBool::new(true));
    let (quiet_done, quiet_over) = tokio::sync::oneshot::channel();
    let chatter_thread = std::thread::spawn({
        let chatting = chatting.clone();
        move || {
            // However the chat ends (a failed send panics), the flood ends with it.
            let _flood_ends = EndsOnDrop(chatting);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the chatter's runtime");
            runtime.block_on(async {
                let client = Client::new();
                // Warm: the first sends of a run meet a cold connection, not the flood.
                chat(&client, c, "warm", 3).await;
                let quiet = chat(&client, c, "quiet", 15).await;
                let _ = quiet_done.send(());
                let busy = chat(&client, c, "busy", 15).await;
                (quiet, busy)
            })
        }
    });
    // The flood starts once the quiet sends are measured; a chatter that failed before is
    // the test's failure.
    let chatting_thread = tokio::task::spawn_blocking(move || chatter_thread.join());
    if quiet_over.await.is_err() {
        match chatting_thread.await.expect("the chatter's thread") {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(_) => panic!("the chatter ended before its quiet sends were done"),
        }
    }
    // As wide as the local stack's instances of a function allow (4 each, where Lambda
    // would run one per request in flight): a wider flood measures the emulator's queue. The
    // flood lasts until the other user's last send is answered, so that every one of them
    // meets it (at the default send limit a fixed count of sends ran out halfway).
    let flooding = || {
        futures_util::stream::iter(0..FLOOD_MOST)
            .take_while(|_| std::future::ready(chatting.load(Ordering::Relaxed)))
    };
    let flood_client = Client::new();
    let client = &flood_client;
    let flood = async {
        let started = std::time::Instant::now();
        let results = flooding()
            .map(|n| async move { timed_send(client, f, &format!("flood {n}")).await })
            .buffer_unordered(FLOOD_WIDTH)
            .collect::<Vec<_>>()
            .await;
        (results, started.elapsed())
    };
    let edits = flooding()
        .map(|n| async move { timed_edit(client, f, &format!("edited {n}")).await })
        .buffer_unordered(FLOOD_WIDTH)
        .collect::<Vec<_>>();
    let ((flooded, lasted), edited) = tokio::join!(flood, edits);
    let (quiet, busy) = match chatting_thread.await.expect("the chatter's thread") {
        Ok(timings) => timings,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let edits_refused = edited.iter().filter(|s| **s == 429).count();
    assert!(
        edited.iter().all(|s| *s == 404 || *s == 429),
        "an edit of nothing: 404, or 429 over the limit; got {edited:?}"
    );
    assert!(
        edits_refused >= edited.len() * 3 / 4,
        "edits refused: {edits_refused} of {}",
        edited.len()
    );
    let accepted = flooded.iter().filter(|(s, _, _)| *s == 202).count();
    let refused: Vec<_> = flooded.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(accepted + refused.len(), flooded.len(), "only 202 or 429");
    assert!(refused
        .iter()
        .all(|(_, retry, _)| retry.as_deref() == Some("1")));
    // The stack's send limit (the test stacks allow a larger burst than the default).
    let limit = Limit::parse(&std::env::var("RATE_LIMIT_SEND").unwrap_or_else(|_| {
        chat_core::config::default_of(Action::Send.variable())
            .expect("a default")
            .into()
    }))
    .expect("RATE_LIMIT_SEND");
    let refills = lasted.as_millis() / limit.interval.as_millis().max(1);
    let most = u128::from(limit.burst) + refills + 1;
    assert!(
        accepted >= limit.burst as usize && accepted as u128 <= most,
        "the burst and the refill over {lasted:?}: {accepted} accepted, at most {most}"
    );
    assert!(
        refused.len() >= flooded.len() / 2,
        "most of the flood refused"
    );
    let (quiet_p50, quiet_p99) = (percentile(&quiet, 50.0), percentile(&quiet, 99.0));
    let (busy_p50, busy_p99) = (percentile(&busy, 50.0), percentile(&busy, 99.0));
    println!(
        "flood: {} sends of one user in {lasted:?}, {accepted} accepted, {} refused; {} edits, \
         {edits_refused} refused; the other user's sends quiet p50 {quiet_p50:?} p99 \
         {quiet_p99:?}, under the flood p50 {busy_p50:?} p99 {busy_p99:?}",
        flooded.len(),
        refused.len(),
        edited.len()
    );
    // Nothing accepted is lost, of either.
    eventually("every accepted message is stored", || async {
        let mine = history(flooder.group_id).await.len();
        let theirs = history(chatter.group_id).await.len();
        mine == accepted && theirs == 33
    })
    .await;
    // Within 2x of quiet, plus a floor for the noise of a p99 of 15 sends on 2 cores that the
    // flood's ~2,000 requests a second, the gateway, the broker and DynamoDB Local share (on
    // AWS each request in flight has an instance of its own).
    assert!(
        busy_p50 <= quiet_p50 * 2 + Duration::from_millis(15),
        "the other user's p50 went from {quiet_p50:?} to {busy_p50:?}"
    );
    assert!(
        busy_p99 <= quiet_p99 * 2 + Duration::from_millis(25),
        "the other user's p99 went from {quiet_p99:?} to {busy_p99:?}"
    );
}
