//! Kafka clients: the producer every publishing function creates once per process, topic
//! administration for local set-up, and the consumer settings our consumers share; and how
//! they authenticate (plaintext locally, MSK IAM or SCRAM over TLS in the cloud).

pub mod msk_iam;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::TopicPartitionList;

use crate::config::{KafkaConfig, KafkaSecurity, ScramCredentials};
use crate::domain::RecordCoordinates;
use crate::error::{ChatError, Service};
use crate::events::ChatEvent;
use msk_iam::MskIamTokens;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No acknowledgement in time, or the cluster cannot take the record now: retry later.
    #[error("Kafka did not acknowledge the record: {0}")]
    Unavailable(String),
    /// Refused for a reason a retry will not fix (unknown topic, record too large, bad config).
    #[error("Kafka refused the record: {0}")]
    Rejected(String),
}

impl From<PublishError> for ChatError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Unavailable(_) => ChatError::Unavailable {
                service: Service::Kafka,
                cause: e.to_string(),
            },
            PublishError::Rejected(_) => ChatError::Internal(e.to_string()),
        }
    }
}

/// Writes records to Kafka and reports where each landed.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Returns once the record is acknowledged by all in-sync replicas.
    async fn publish(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<RecordCoordinates, PublishError>;
}

/// Publishes a chat event to the chat topic, keyed by its group so that a group's events stay
/// in one partition, in order.
pub async fn publish_event(
    publisher: &dyn Publisher,
    topic: &str,
    event: &ChatEvent,
) -> Result<RecordCoordinates, PublishError> {
    publisher
        .publish(topic, &event.key(), &event.to_json())
        .await
}

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

/// A client that cannot be set up: fails the process at start, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("cannot read the SCRAM credentials from secret {arn}: {cause}")]
    ScramSecret { arn: String, cause: String },
    #[error(transparent)]
    MskIam(#[from] msk_iam::TokenError),
}

impl From<KafkaSetupError> for PublishError {
    fn from(e: KafkaSetupError) -> Self {
        PublishError::Rejected(e.to_string())
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

    fn uses_msk_iam(&self) -> bool {
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
            c.set("security.protocol", "sasl_ssl")
                .set("sasl.mechanism", "OAUTHBEARER");
            set_tls(&mut c);
            context = KafkaContext::with_msk_iam(Arc::new(tokens));
        }
        KafkaSecurity::Scram(credentials) => {
            let (username, password) = match credentials {
                ScramCredentials::Inline { username, password } => {
                    (username.clone(), password.clone())
                }
                ScramCredentials::Secret { arn } => read_scram_secret(arn, config)?,
            };
            c.set("security.protocol", "sasl_ssl")
                .set("sasl.mechanism", "SCRAM-SHA-512")
                .set("sasl.username", username)
                .set("sasl.password", password);
            set_tls(&mut c);
        }
    }
    Ok(KafkaClientConfig { config: c, context })
}

fn set_tls(c: &mut ClientConfig) {
    // The vendored OpenSSL has no default CA path of the host: look in the usual places
    // (/etc/pki/tls on Amazon Linux, /etc/ssl/certs on Debian).
    c.set("ssl.ca.location", "probe");
}

/// Reads `{"username": ..., "password": ...}` from Secrets Manager, on a thread of its own so
/// that it can be called from inside or outside a tokio runtime.
fn read_scram_secret(arn: &str, config: &KafkaConfig) -> Result<(String, String), KafkaSetupError> {
    let failed = |cause: String| KafkaSetupError::ScramSecret {
        arn: arn.to_owned(),
        cause,
    };
    let fetch = async {
        let sdk = crate::aws::sdk_config(&config.region, config.timeout).await;
        let client = aws_sdk_secretsmanager::Client::new(&sdk);
        let secret = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| crate::aws::error_chain(&e))?;
        secret
            .secret_string()
            .map(str::to_owned)
            .ok_or_else(|| "the secret has no string value".to_owned())
    };
    let text = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?
                    .block_on(fetch)
            })
            .join()
            .unwrap_or_else(|_| Err("the secret reader panicked".into()))
    })
    .map_err(failed)?;
    parse_scram_secret(&text).map_err(failed)
}

/// The secret's user name and password; the message of an error never quotes the secret.
pub fn parse_scram_secret(text: &str) -> Result<(String, String), String> {
    #[derive(serde::Deserialize)]
    struct Secret {
        username: String,
        password: String,
    }
    let secret: Secret = serde_json::from_str(text).map_err(|_| {
        "the secret is not JSON of the form {\"username\": ..., \"password\": ...}".to_owned()
    })?;
    if secret.username.is_empty() || secret.password.is_empty() {
        return Err("the secret has an empty username or password".into());
    }
    Ok((secret.username, secret.password))
}

/// The one producer of a process: idempotent, acknowledged by all replicas, bounded in time.
pub struct KafkaPublisher {
    producer: FutureProducer<KafkaContext>,
    timeout: Duration,
}

impl KafkaPublisher {
    /// Creates the producer. It connects lazily: an unreachable broker shows up as
    /// [`PublishError::Unavailable`] on the first publish, after at most `config.timeout`.
    pub fn new(config: &KafkaConfig) -> Result<Self, PublishError> {
        let producer = client_config(config)?
            // Durability: a record counts as sent only once every in-sync replica has it.
            .set("acks", "all")
            // No duplicates or reordering from librdkafka's own retries.
            .set("enable.idempotence", "true")
            // Bound the whole send, retries included, so a request never hangs on Kafka.
            .set("message.timeout.ms", config.timeout.as_millis().to_string())
            .set("request.timeout.ms", config.timeout.as_millis().to_string())
            // A short linger lets concurrent sends share a request without adding latency.
            .set("linger.ms", "2")
            .create::<FutureProducer<KafkaContext>>()
            .map_err(|e| PublishError::Rejected(e.to_string()))?;
        Ok(Self {
            producer,
            timeout: config.timeout,
        })
    }

    /// Waits until queued records are delivered (or `timeout` passes); for process exit.
    pub fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        self.producer
            .flush(Timeout::After(timeout))
            .map_err(classify)
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<RecordCoordinates, PublishError> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        let send = self.producer.send(record, Timeout::After(self.timeout));
        // message.timeout.ms bounds delivery; this outer bound guards against anything else.
        let delivery = tokio::time::timeout(self.timeout + Duration::from_secs(1), send)
            .await
            .map_err(|_| PublishError::Unavailable("no delivery report in time".into()))?
            .map_err(|(e, _)| classify(e))?;
        Ok(RecordCoordinates {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }
}

fn classify(e: KafkaError) -> PublishError {
    use RDKafkaErrorCode as C;
    let retryable = matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageTimedOut
                | C::RequestTimedOut
                | C::OperationTimedOut
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::QueueFull
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::NetworkException
                | C::BrokerNotAvailable
        )
    );
    if retryable {
        PublishError::Unavailable(e.to_string())
    } else {
        PublishError::Rejected(e.to_string())
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

/// Fails, saying why, unless a broker answers a metadata request within `timeout`.
pub fn check_broker(config: &KafkaConfig, timeout: Duration) -> Result<(), String> {
    let consumer = metadata_client(config).map_err(|e| e.to_string())?;
    consumer
        .fetch_metadata(None, Timeout::After(timeout))
        .map(|_| ())
        .map_err(|e| format!("no broker answered within {timeout:?}: {e}"))
}

/// Creates each `(topic, partitions)` that does not exist yet. Existing topics are left as
/// they are (their partition count is not changed: that would move groups between partitions).
pub async fn ensure_topics(
    config: &KafkaConfig,
    topics: &[(&str, i32)],
) -> Result<(), PublishError> {
    let client_config = client_config(config)?;
    if client_config.uses_msk_iam() {
        // rdkafka's admin client never serves librdkafka's token requests: on MSK the topics
        // are created with the cluster, and only checked here.
        for (name, _) in topics {
            partition_count(config, name, config.timeout).map_err(|e| {
                PublishError::Rejected(format!(
                    "{e}; on an MSK IAM cluster create topics with kafka-topics.sh (see the README)"
                ))
            })?;
        }
        return Ok(());
    }
    let admin: AdminClient<KafkaContext> = client_config
        .create()
        .map_err(|e| PublishError::Rejected(e.to_string()))?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(config.timeout))
        .operation_timeout(Some(config.timeout));
    let results = tokio::time::timeout(
        config.timeout + Duration::from_secs(1),
        admin.create_topics(&new_topics, &options),
    )
    .await
    .map_err(|_| PublishError::Unavailable("CreateTopics got no answer in time".into()))?
    .map_err(classify)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(PublishError::Rejected(format!(
                    "could not create topic {topic}: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// A client for metadata requests, authenticated before its first request.
fn metadata_client(config: &KafkaConfig) -> Result<BaseConsumer<KafkaContext>, PublishError> {
    let consumer: BaseConsumer<KafkaContext> = client_config(config)?
        .create()
        .map_err(|e| PublishError::Rejected(e.to_string()))?;
    // librdkafka queues its first token request at creation; metadata calls do not poll, so
    // serve it now (a no-op without MSK IAM).
    let _ = consumer.poll(Duration::ZERO);
    Ok(consumer)
}

/// How many partitions `topic` has, from the broker's metadata.
pub fn partition_count(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<usize, PublishError> {
    let consumer = metadata_client(config)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Timeout::After(timeout))
        .map_err(classify)?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .ok_or_else(|| PublishError::Rejected(format!("topic {topic} does not exist")))
}

/// The end (next offset) of each partition of `topic`, by partition number.
pub fn partition_ends(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i64>, PublishError> {
    let partitions = partition_count(config, topic, timeout)?;
    let consumer = metadata_client(config)?;
    (0..partitions as i32)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Timeout::After(timeout))
                .map(|(_, high)| high)
                .map_err(classify)
        })
        .collect()
}

/// A [`Publisher`] that keeps records in memory, for unit tests of handler logic only.
/// Each key maps to one of four partitions with its own offsets, as in Kafka.
#[derive(Default)]
pub struct MemoryPublisher {
    records: std::sync::Mutex<Vec<PublishedRecord>>,
    failure: std::sync::Mutex<Option<PublishError>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub at: RecordCoordinates,
}

impl MemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on every publish fails with `error`.
    pub fn fail_with(&self, error: PublishError) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    pub fn records(&self) -> Vec<PublishedRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl Publisher for MemoryPublisher {
    async fn publish(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<RecordCoordinates, PublishError> {
        if let Some(e) = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(e);
        }
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let partition = (key.bytes().map(u32::from).sum::<u32>() % 4) as i32;
        let offset = records
            .iter()
            .filter(|r| r.topic == topic && r.at.partition == partition)
            .count() as i64;
        let at = RecordCoordinates { partition, offset };
        records.push(PublishedRecord {
            topic: topic.to_owned(),
            key: key.to_owned(),
            payload: payload.to_vec(),
            at,
        });
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Instant, SystemTime};

    use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
    use aws_credential_types::Credentials;

    use super::*;

    fn kafka_config(security: KafkaSecurity) -> KafkaConfig {
        KafkaConfig {
            // Nothing listens on port 1: clients are created, never connected.
            bootstrap_servers: "127.0.0.1:1".into(),
            security,
            chat_topic: "chat-events".into(),
            dead_letter_topic: "chat-events-dlq".into(),
            timeout: Duration::from_secs(2),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn plaintext_clients_neither_encrypt_nor_authenticate() {
        let c = client_config(&kafka_config(KafkaSecurity::Plaintext)).expect("settings");
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("sasl.mechanism"), None);
        assert!(!c.uses_msk_iam());
    }

    #[test]
    fn scram_clients_authenticate_over_tls_with_the_configured_user() {
        let c = client_config(&kafka_config(KafkaSecurity::Scram(
            ScramCredentials::Inline {
                username: "chat".into(),
                password: "s3cret".into(),
            },
        )))
        .expect("settings");
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("chat"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        assert_eq!(c.get("ssl.ca.location"), Some("probe"));
        // librdkafka accepts the settings (TLS support is compiled in).
        let _producer: FutureProducer<KafkaContext> = c.create().expect("a SASL_SSL producer");
    }

    #[test]
    fn an_unreadable_scram_secret_stops_the_client_at_start_naming_the_secret() {
        // No Secrets Manager is reachable from the tests: the read fails within the timeout.
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_chat-AbCdEf";
        let started = Instant::now();
        let err = client_config(&kafka_config(KafkaSecurity::Scram(
            ScramCredentials::Secret { arn: arn.into() },
        )))
        .err()
        .expect("no secret, no client");
        assert!(
            matches!(&err, KafkaSetupError::ScramSecret { arn: a, .. } if a == arn),
            "{err}"
        );
        assert!(err.to_string().contains(arn), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn scram_secrets_are_read_as_msk_writes_them() {
        assert_eq!(
            parse_scram_secret(r#"{"username": "chat", "password": "p\"w"}"#),
            Ok(("chat".into(), "p\"w".into()))
        );
        for bad in [
            "",
            "chat:secret",
            r#"{"username": "chat"}"#,
            r#"{"username": "", "password": "x"}"#,
            r#"{"user": "chat", "password": "hunter2"}"#,
        ] {
            let err = parse_scram_secret(bad).expect_err(bad);
            assert!(!err.contains("hunter2"), "the secret leaks into {err}");
        }
    }

    #[derive(Debug)]
    struct CountingCredentials(Arc<AtomicUsize>);

    impl ProvideCredentials for CountingCredentials {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(Ok(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            )))
        }
    }

    #[test]
    fn librdkafka_asks_the_context_for_msk_iam_tokens() {
        let asked = Arc::new(AtomicUsize::new(0));
        let tokens = MskIamTokens::new(
            "eu-west-1",
            SharedCredentialsProvider::new(CountingCredentials(asked.clone())),
            SystemTime::now,
            Duration::from_secs(2),
        );
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("security.protocol", "sasl_ssl")
            .set("sasl.mechanism", "OAUTHBEARER");
        let client = KafkaClientConfig {
            config,
            context: KafkaContext::with_msk_iam(Arc::new(tokens)),
        };
        // The producer's polling thread serves librdkafka's first token request.
        let _producer: FutureProducer<KafkaContext> = client.create().expect("producer");
        let deadline = Instant::now() + Duration::from_secs(5);
        while asked.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            asked.load(Ordering::SeqCst) >= 1,
            "librdkafka never asked for a token"
        );
    }

    #[test]
    fn without_msk_iam_the_context_has_no_token_to_give() {
        let err = KafkaContext::default()
            .generate_oauth_token(None)
            .err()
            .expect("no token");
        assert!(err.to_string().contains("msk-iam"), "{err}");
    }
}
