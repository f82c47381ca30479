//! The settings every Kafka client of ours shares: where the brokers are, how to authenticate
//! (plaintext locally, MSK IAM or SCRAM over TLS in the cloud), and the context that serves
//! librdkafka's token requests and logs what the group does.

use std::sync::Arc;

use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;

use super::msk_iam::MskIamTokens;
use super::scram::read_scram_secret;
pub use super::setup_error::KafkaSetupError;
use chat_core::config::{KafkaConfig, KafkaSecurity, ScramCredentials};

/// The context every client of ours is created with: it answers librdkafka's requests for an
/// OAUTHBEARER token when the cluster uses MSK IAM.
#[derive(Clone, Default)]
pub struct KafkaContext {
    tokens: Option<Arc<MskIamTokens>>,
}

impl KafkaContext {
    pub fn with_msk_iam(tokens: Arc<MskIamTokens>) -> Self {
        Self {
            tokens: Some(tokens),
        }
    }
}

impl ClientContext for KafkaContext {
    // librdkafka only asks when `sasl.mechanism` is OAUTHBEARER, i.e. with MSK IAM.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let tokens = self
            .tokens
            .as_ref()
            .ok_or("OAUTHBEARER tokens are only made with KAFKA_SECURITY=msk-iam")?;
        // On failure librdkafka asks again after 10 s; meanwhile requests wait for the broker.
        let token = tokens.token().inspect_err(|e| {
            tracing::error!(error = %e, "no MSK IAM token; librdkafka retries in 10 s");
        })?;
        tracing::debug!(
            expires_at_ms = token.expires_at_ms,
            refresh_at_ms = token.refresh_at_ms,
            "new MSK IAM token"
        );
        Ok(OAuthToken {
            token: token.token,
            // Informational for librdkafka; MSK derives the principal from the signature.
            principal_name: "msk-iam".into(),
            lifetime_ms: token.expires_at_ms,
        })
    }
}

impl ConsumerContext for KafkaContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| {
            list.elements()
                .iter()
                .map(|e| format!("{}-{}", e.topic(), e.partition()))
                .collect::<Vec<_>>()
                .join(",")
        };
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = %partitions(list), "partitions assigned")
            }
            Rebalance::Revoke(list) => {
                tracing::info!(partitions = %partitions(list), "partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            // A periodic commit with nothing new to commit.
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(
                error = %e,
                partitions = offsets.count(),
                "offset commit failed; the stored offsets are committed again later"
            ),
        }
    }
}

/// librdkafka settings and the context to create a client with.
#[derive(Clone)]
pub struct KafkaClientConfig {
    config: ClientConfig,
    context: KafkaContext,
}

impl KafkaClientConfig {
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.config.set(key, value);
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.config.get(key)
    }

    pub fn create<T: FromClientConfigAndContext<KafkaContext>>(&self) -> KafkaResult<T> {
        self.config.create_with_context(self.context.clone())
    }

    /// Only topic administration needs to know.
    pub(super) fn uses_msk_iam(&self) -> bool {
        self.context.tokens.is_some()
    }
}

/// Settings every client of ours shares: where the brokers are and how to reach them.
///
/// With MSK IAM a first token is signed here, and with a SCRAM secret the secret is read here,
/// so that missing credentials stop the process at start rather than stall its first request.
pub fn client_config(config: &KafkaConfig) -> Result<KafkaClientConfig, KafkaSetupError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        // Fail a connection attempt fast rather than after librdkafka's default 30 s.
        .set(
            "socket.connection.setup.timeout.ms",
            config.timeout.as_millis().clamp(1000, 30_000).to_string(),
        )
        // librdkafka logs every failed connection attempt; keep one line a minute.
        .set("log.connection.close", "false")
        // Retry a lost broker at least once a second (default: backoff up to 10 s), so that
        // clients are back soon after it is: a consumer group member that stays away longer
        // than its session loses its partitions, and their uncommitted records come again.
        .set("reconnect.backoff.max.ms", "1000");
    let mut context = KafkaContext::default();
    match &config.security {
        KafkaSecurity::Plaintext => {
            c.set("security.protocol", "plaintext");
        }
        KafkaSecurity::MskIam => {
            let tokens = MskIamTokens::from_environment(&config.region, config.timeout);
            tokens.token()?;
            c.set("sasl.mechanism", "OAUTHBEARER");
            set_sasl_protocol(&mut c, config.tls);
            context = KafkaContext::with_msk_iam(Arc::new(tokens));
        }
        KafkaSecurity::Scram(credentials) => {
            let (username, password) = match credentials {
                ScramCredentials::Inline { username, password } => {
                    (username.clone(), password.clone())
                }
                ScramCredentials::Secret { arn } => read_scram_secret(arn, config)?,
            };
            c.set("sasl.mechanism", "SCRAM-SHA-512")
                .set("sasl.username", username)
                .set("sasl.password", password);
            set_sasl_protocol(&mut c, config.tls);
        }
    }
    Ok(KafkaClientConfig { config: c, context })
}

fn set_sasl_protocol(c: &mut ClientConfig, tls: bool) {
    if tls {
        // The vendored OpenSSL has no default CA path of the host: look in the usual places
        // (/etc/pki/tls on Amazon Linux, /etc/ssl/certs on Debian).
        c.set("security.protocol", "sasl_ssl")
            .set("ssl.ca.location", "probe");
    } else {
        // The local broker's MSK IAM listener (KAFKA_TLS=false; never on AWS).
        c.set("security.protocol", "sasl_plaintext");
    }
}

/// Settings for a consumer group member that commits offsets itself, after processing.
pub fn consumer_config(
    config: &KafkaConfig,
    group_id: &str,
) -> Result<KafkaClientConfig, KafkaSetupError> {
    let mut c = client_config(config)?;
    c.set("group.id", group_id)
        // Commit only what was processed (at-least-once).
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // A long poll: Kafka answers a fetch as soon as a record arrives, so this only bounds
        // how often an idle consumer asks (twice a second), not how long a record waits.
        .set("fetch.wait.max.ms", "500")
        // A member that died without leaving hands its partitions on after 30 s (default 45 s);
        // a broker restart, or a pause of several seconds, stays well inside it.
        .set("session.timeout.ms", "30000");
    Ok(c)
}

#[cfg(test)]
mod tests;
