//! SCRAM credentials kept in Secrets Manager, as MSK and Lambda's Kafka event source keep them.

use super::setup_error::KafkaSetupError;
use chat_core::config::KafkaConfig;

/// Reads `{"username": ..., "password": ...}` from Secrets Manager, on a thread of its own so
/// that it can be called from inside or outside a tokio runtime.
pub(super) fn read_scram_secret(
    arn: &str,
    config: &KafkaConfig,
) -> Result<(String, String), KafkaSetupError> {
    let failed = |cause: String| KafkaSetupError::ScramSecret {
        arn: arn.to_owned(),
        cause,
    };
    let fetch = async {
        let sdk = chat_aws::sdk_config(&config.region, config.timeout).await;
        let client = aws_sdk_secretsmanager::Client::new(&sdk);
        let secret = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| chat_aws::error_chain(&e))?;
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
