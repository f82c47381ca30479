//! `chat-aws`: the AWS SDK configuration our clients share (region, time bounds, retries,
//! credentials), and errors on one line.

use std::time::Duration;

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// An SDK configuration whose every call is bounded by `timeout`, retries included.
///
/// Credentials come from the environment (where Lambda puts them) or a profile. The instance
/// metadata service is never asked: off AWS it does not exist, and probing it would delay every
/// cold start by its timeout. With no credentials at all (a laptop running DynamoDB Local and
/// the emulators), requests are signed with fixed dummy ones, which local services accept and
/// AWS refuses with a clear error.
pub async fn sdk_config(region: &str, timeout: Duration) -> SdkConfig {
    let attempt = (timeout / 2).max(Duration::from_millis(100));
    let credentials = CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("Profile", ProfileFileCredentialsProvider::builder().build())
    .or_else(
        "Local",
        Credentials::new("local", "local", None, None, "local-services"),
    );
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1).min(attempt))
                .operation_attempt_timeout(attempt)
                .operation_timeout(timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The error and its causes on one line, without the SDK's debug dump.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
