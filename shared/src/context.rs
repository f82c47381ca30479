//! What a function builds once per process and borrows on every request.

use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::publish::{NoPublisher, PublishError, Publisher};
use crate::store::dynamodb::DynamoStore;
use crate::store::{KnownUsers, Store};

#[derive(Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub publisher: Arc<dyn Publisher>,
    /// Users read recently, for the hot path of a send (see [`KnownUsers`]).
    pub known_users: Arc<KnownUsers>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create the Kafka producer: {0}")]
    Kafka(#[from] PublishError),
}

/// Whether a function writes to Kafka. Those that do not get no producer: no connection, no
/// credentials and no network path to the cluster are needed for them, and without the
/// `kafka` feature they do not even link librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kafka {
    #[cfg(feature = "kafka")]
    Publishes,
    NotUsed,
}

impl AppContext {
    /// Reads the configuration and builds the real clients. Neither client connects here, so
    /// a cold start does not wait on the network.
    pub async fn from_env(kafka: Kafka) -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let publisher: Arc<dyn Publisher> = match kafka {
            #[cfg(feature = "kafka")]
            Kafka::Publishes => Arc::new(crate::kafka::KafkaPublisher::new(&config.kafka)?),
            Kafka::NotUsed => Arc::new(NoPublisher),
        };
        let store = DynamoStore::from_config(&config.dynamodb).await;
        Ok(Self {
            config: Arc::new(config),
            store: Arc::new(store),
            publisher,
            known_users: Arc::default(),
        })
    }
}
