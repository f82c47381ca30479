//! Amazon MSK IAM access control: SASL/OAUTHBEARER tokens that are SigV4-signed
//! `kafka-cluster:Connect` requests, made by `aws-msk-iam-sasl-signer` from the process's AWS
//! credentials.
//!
//! librdkafka asks for a token from whichever thread polls the client (a producer's polling
//! thread, or a task inside a tokio runtime), and its callback is synchronous. Fetching
//! credentials may need the network (a profile's SSO or role), so a small thread with a runtime of
//! its own does the work and the callback waits for its answer, bounded in time.

use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::Region;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use chat_aws::error_chain;

/// A token is never handed out with less than this left: the credentials must be renewed first.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// librdkafka asks for a new token once this share of its lifetime has passed.
const REFRESH_AT_PERCENT: i64 = 80;

/// A signed token, when it stops being valid and when librdkafka will replace it.
#[derive(Clone, PartialEq, Eq)]
pub struct MskToken {
    pub token: String,
    /// Milliseconds since the Unix epoch, as librdkafka takes it.
    pub expires_at_ms: i64,
    pub refresh_at_ms: i64,
}

impl std::fmt::Debug for MskToken {
    // The token is a bearer credential: it never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MskToken")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("refresh_at_ms", &self.refresh_at_ms)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no AWS credentials for MSK IAM authentication (set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): {0}")]
    Credentials(String),
    #[error("cannot sign the MSK IAM token: {0}")]
    Signing(String),
    #[error("the token would be valid for {valid_ms} ms only (credentials about to expire, or the clock is off)")]
    TooShort { valid_ms: i64 },
    #[error("no MSK IAM token within {0:?}")]
    Timeout(Duration),
    #[error("the MSK IAM token thread has stopped")]
    Stopped,
}

/// When a token signed at `now` stops being valid, and when it is to be replaced.
///
/// The signature is valid for as long as the signer says (15 minutes), but never beyond the
/// credentials that made it: temporary credentials (a role, SSO) may expire sooner. librdkafka
/// asks for the next token at 80 % of the lifetime, which leaves room for a slow refresh.
pub fn schedule(
    now: SystemTime,
    signature_expiry_ms: i64,
    credentials_expiry: Option<SystemTime>,
) -> Result<(i64, i64), TokenError> {
    let now_ms = epoch_ms(now);
    let expires_at_ms = credentials_expiry
        .map(epoch_ms)
        .map_or(signature_expiry_ms, |c| c.min(signature_expiry_ms));
    let valid_ms = expires_at_ms - now_ms;
    if valid_ms < MIN_TOKEN_LIFETIME.as_millis() as i64 {
        return Err(TokenError::TooShort { valid_ms });
    }
    Ok((expires_at_ms, now_ms + valid_ms * REFRESH_AT_PERCENT / 100))
}

fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

type Reply = mpsc::Sender<Result<MskToken, TokenError>>;

/// Signs MSK IAM tokens on request, from any thread.
pub struct MskIamTokens {
    requests: mpsc::Sender<Reply>,
    timeout: Duration,
}

impl MskIamTokens {
    /// Credentials from the environment (where Lambda puts them) or the AWS profile. Unlike the
    /// DynamoDB client's chain there is no local fallback: a token signed with dummy
    /// credentials could only fail later, at the broker.
    pub fn from_environment(region: &str, timeout: Duration) -> Self {
        let credentials = CredentialsProviderChain::first_try(
            "Environment",
            EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("Profile", ProfileFileCredentialsProvider::builder().build());
        Self::new(
            region,
            SharedCredentialsProvider::new(credentials),
            SystemTime::now,
            timeout,
        )
    }

    /// Tokens signed with `credentials`, scheduled by `clock`.
    pub fn new(
        region: &str,
        credentials: SharedCredentialsProvider,
        clock: fn() -> SystemTime,
        timeout: Duration,
    ) -> Self {
        let (requests, incoming) = mpsc::channel::<Reply>();
        let region = Region::new(region.to_owned());
        let spawned = std::thread::Builder::new()
            .name("msk-iam-tokens".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the MSK IAM token thread");
                        return;
                    }
                };
                // Ends when the last `MskIamTokens` (the only sender) is dropped.
                while let Ok(reply) = incoming.recv() {
                    let token = runtime.block_on(sign(&region, &credentials, clock));
                    let _ = reply.send(token);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot spawn the MSK IAM token thread");
        }
        Self { requests, timeout }
    }

    /// A freshly signed token. Blocks the calling thread for at most the configured timeout.
    pub fn token(&self) -> Result<MskToken, TokenError> {
        let (reply, answer) = mpsc::channel();
        self.requests.send(reply).map_err(|_| TokenError::Stopped)?;
        match answer.recv_timeout(self.timeout) {
            Ok(token) => token,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(TokenError::Timeout(self.timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(TokenError::Stopped),
        }
    }
}

async fn sign(
    region: &Region,
    credentials: &SharedCredentialsProvider,
    clock: fn() -> SystemTime,
) -> Result<MskToken, TokenError> {
    let credentials = credentials
        .provide_credentials()
        .await
        .map_err(|e| TokenError::Credentials(error_chain(&e)))?;
    let now = clock();
    let credentials_expiry = credentials.expiry();
    let (token, signature_expiry_ms) =
        aws_msk_iam_sasl_signer::generate_auth_token_from_credentials_provider(
            region.clone(),
            SharedCredentialsProvider::new(credentials),
        )
        .await
        .map_err(|e| TokenError::Signing(error_chain(&e)))?;
    let (expires_at_ms, refresh_at_ms) = schedule(now, signature_expiry_ms, credentials_expiry)?;
    Ok(MskToken {
        token,
        expires_at_ms,
        refresh_at_ms,
    })
}

#[cfg(test)]
mod tests;
