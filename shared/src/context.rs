//! What a function builds once per process and borrows on every request.

use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::kafka::{KafkaPublisher, PublishError, Publisher};
use crate::store::dynamodb::DynamoStore;
use crate::store::Store;

#[derive(Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub publisher: Arc<dyn Publisher>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create the Kafka producer: {0}")]
    Kafka(#[from] PublishError),
}

impl AppContext {
    /// Reads the configuration and builds the real clients. Neither client connects here, so
    /// a cold start does not wait on the network.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let publisher = KafkaPublisher::new(&config.kafka)?;
        let store = DynamoStore::from_config(&config.dynamodb).await;
        Ok(Self {
            config: Arc::new(config),
            store: Arc::new(store),
            publisher: Arc::new(publisher),
        })
    }
}
