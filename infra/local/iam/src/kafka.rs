//! Amazon MSK's IAM access control, for the local broker: an MSK IAM token (SASL/OAUTHBEARER)
//! names who connects, and each Kafka authorization (an ACL operation on a resource) is the
//! `kafka-cluster:*` action MSK documents as its equivalent, on the resource's MSK ARN.

use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};

use crate::sigv4::{self, SignatureError, SignedRequest};
use crate::template::Locals;

/// The `kafka-cluster` action and MSK ARN equivalent to Kafka's `operation` on a resource;
/// `None` for what MSK's IAM access control does not grant (cluster-internal actions).
pub fn action_for(
    operation: &str,
    resource_type: &str,
    name: &str,
    locals: &Locals,
) -> Option<(String, String)> {
    let action = match (resource_type, operation) {
        ("CLUSTER", "DESCRIBE") => "DescribeCluster",
        ("CLUSTER", "ALTER") => "AlterCluster",
        ("CLUSTER", "DESCRIBE_CONFIGS") => "DescribeClusterDynamicConfiguration",
        ("CLUSTER", "ALTER_CONFIGS") => "AlterClusterDynamicConfiguration",
        ("CLUSTER", "IDEMPOTENT_WRITE") => "WriteDataIdempotently",
        ("TOPIC", "READ") => "ReadData",
        ("TOPIC", "WRITE") => "WriteData",
        ("TOPIC", "CREATE") => "CreateTopic",
        ("TOPIC", "DELETE") => "DeleteTopic",
        ("TOPIC", "ALTER") => "AlterTopic",
        ("TOPIC", "DESCRIBE") => "DescribeTopic",
        ("TOPIC", "DESCRIBE_CONFIGS") => "DescribeTopicDynamicConfiguration",
        ("TOPIC", "ALTER_CONFIGS") => "AlterTopicDynamicConfiguration",
        ("GROUP", "READ") => "AlterGroup",
        ("GROUP", "DESCRIBE") => "DescribeGroup",
        ("GROUP", "DELETE") => "DeleteGroup",
        ("TRANSACTIONAL_ID", "DESCRIBE") => "DescribeTransactionalId",
        ("TRANSACTIONAL_ID", "WRITE") => "AlterTransactionalId",
        _ => return None,
    };
    let resource = match resource_type {
        "CLUSTER" => locals.cluster_arn(),
        "TOPIC" => locals.kafka_arn("topic", name),
        "GROUP" => locals.kafka_arn("group", name),
        _ => locals.kafka_arn("transactional-id", name),
    };
    Some((format!("kafka-cluster:{action}"), resource))
}

/// A verified MSK IAM token: who signed it and until when it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSigner {
    pub access_key: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not an MSK IAM token: {0}")]
    Malformed(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Verifies an MSK IAM token: the base64url form of a presigned `GET
/// https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect...`, signed for the
/// `kafka-cluster` service in the cluster's region.
pub fn verify_token(
    token: &str,
    secret_of: impl Fn(&str) -> Option<String>,
    locals: &Locals,
    now: DateTime<Utc>,
) -> Result<TokenSigner, TokenError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("not base64url".into()))?;
    let url = String::from_utf8(bytes).map_err(|_| TokenError::Malformed("not UTF-8".into()))?;
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| TokenError::Malformed("not an https URL".into()))?;
    let (host, path_and_query) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (path, query) = path_and_query
        .split_once('?')
        .ok_or_else(|| TokenError::Malformed("no query".into()))?;
    let expected_host = format!("kafka.{}.amazonaws.com", locals.region);
    if host != expected_host {
        return Err(TokenError::Malformed(format!(
            "signed for {host}, not {expected_host}"
        )));
    }
    let action = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned());
    if action.as_deref() != Some("kafka-cluster:Connect") {
        return Err(TokenError::Malformed(format!("Action is {action:?}")));
    }
    let headers = [("host".to_owned(), host.to_owned())];
    let request = SignedRequest {
        method: "GET",
        path,
        query,
        headers: &headers,
        body: b"",
    };
    let signer = sigv4::verify(&request, secret_of, now)?;
    if signer.service != "kafka-cluster" || signer.region != locals.region {
        return Err(TokenError::Malformed(format!(
            "signed for {} in {}",
            signer.service, signer.region
        )));
    }
    let expires: i64 = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "X-Amz-Expires")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    Ok(TokenSigner {
        access_key: signer.access_key,
        expires_at: signer.signed_at + TimeDelta::seconds(expires),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;

    fn locals() -> Locals {
        Locals::in_region("us-east-1")
    }

    #[test]
    fn kafka_operations_are_msks_documented_actions() {
        let l = locals();
        let prefix = "arn:aws:kafka:us-east-1:000000000000";
        let uuid = crate::template::CLUSTER_UUID;
        assert_eq!(
            action_for("WRITE", "TOPIC", "chat-events", &l),
            Some((
                "kafka-cluster:WriteData".into(),
                format!("{prefix}:topic/chat-local/{uuid}/chat-events")
            ))
        );
        assert_eq!(
            action_for("READ", "GROUP", "g", &l),
            Some((
                "kafka-cluster:AlterGroup".into(),
                format!("{prefix}:group/chat-local/{uuid}/g")
            ))
        );
        assert_eq!(
            action_for("IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster", &l),
            Some((
                "kafka-cluster:WriteDataIdempotently".into(),
                l.cluster_arn()
            ))
        );
        assert_eq!(
            action_for("CLUSTER_ACTION", "CLUSTER", "kafka-cluster", &l),
            None
        );
    }

    fn token(secret: &str, region: &str) -> String {
        let credentials = Credentials::new("local-fn-send-message", secret, None, None, "test");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(
                aws_msk_iam_sasl_signer::generate_auth_token_from_credentials_provider(
                    aws_config::Region::new(region.to_owned()),
                    SharedCredentialsProvider::new(credentials),
                ),
            )
            .expect("token")
            .0
    }

    fn secret_of(key: &str) -> Option<String> {
        (key == "local-fn-send-message").then(|| "local-secret-send-message".to_owned())
    }

    #[test]
    fn tokens_of_the_msk_signer_verify_and_name_their_key() {
        let signer = verify_token(
            &token("local-secret-send-message", "us-east-1"),
            secret_of,
            &locals(),
            Utc::now(),
        )
        .expect("verifies");
        assert_eq!(signer.access_key, "local-fn-send-message");
        assert!(signer.expires_at > Utc::now() + TimeDelta::minutes(14));
    }

    #[test]
    fn forged_foreign_and_garbled_tokens_are_refused() {
        let l = locals();
        assert!(matches!(
            verify_token(&token("guessed", "us-east-1"), secret_of, &l, Utc::now()),
            Err(TokenError::Signature(SignatureError::Mismatch))
        ));
        assert!(matches!(
            verify_token(
                &token("local-secret-send-message", "eu-west-1"),
                secret_of,
                &l,
                Utc::now()
            ),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            verify_token("%%%", secret_of, &l, Utc::now()),
            Err(TokenError::Malformed(_))
        ));
        let plain = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("http://x/?Action=a");
        assert!(matches!(
            verify_token(&plain, secret_of, &l, Utc::now()),
            Err(TokenError::Malformed(_))
        ));
    }
}
