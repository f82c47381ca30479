//! What verifying a token costs: `cargo run -p chat-auth --example token_cost`.
//! Signs tokens with a fresh local issuer and verifies them with a warm key cache, as the
//! local API Gateway and `ws-authorize` do on every request; prints the median and p99.

use std::time::{Duration, Instant};

use chat_auth::{KeySource, LocalIssuer, Verifier, JWKS_FILE};
use chat_core::domain::UserId;

const ROUNDS: usize = 5_000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::temp_dir().join(format!("token-cost-{}", std::process::id()));
    let issuer = LocalIssuer::open_or_create(&dir, "http://issuer.local", "bench")
        .unwrap_or_else(|e| panic!("{e}"));
    let verifier = Verifier::new(
        "http://issuer.local",
        "bench",
        KeySource::File(dir.join(JWKS_FILE)),
    );
    let user = UserId::new(1).unwrap_or_else(|e| panic!("{e}"));
    let token = issuer.token(user, Duration::from_secs(3600));
    verifier
        .verify(&token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut verify = Vec::with_capacity(ROUNDS);
    let mut sign = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let token = issuer.token(user, Duration::from_secs(3600));
        sign.push(started.elapsed());
        let started = Instant::now();
        verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        verify.push(started.elapsed());
    }
    for (what, mut times) in [
        ("verify (RS256, cached JWKS)", verify),
        ("sign (local issuer)", sign),
    ] {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "{what}: {ROUNDS} tokens, p50 {:?}, p99 {:?}",
            at(0.5),
            at(0.99)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
