//! Local IAM bites: every AWS call a function makes in the local stack is allowed or refused by
//! the statements `infra/template.yaml` gives that function, as AWS would. A copy of the
//! template with one statement removed makes exactly the matching call fail with
//! `AccessDenied` (DynamoDB, the Management API, the Kafka trigger's role), and functions reach
//! the broker only as their role allows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use chat_core::domain::{GroupId, MessageId};
use chat_core::store::{MessageReader, StoreError};
use chat_kafka::msk_iam::MskIamTokens;
use chat_kafka::KafkaContext;
use chat_store::DynamoStore;
use chat_testkit::services::{config, fresh_id, require_env, unique};
use e2e_tests::template::root;
use local_iam::identity::function_credentials;
use local_iam::server::Service;
use local_iam::sigv4::SignedRequest;
use local_iam::template::Locals;
use local_iam::{Iam, Mode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// The template's text, without `snippet` inside the resource `resource` (it must be there).
fn template_without(resource: &str, snippet: &str) -> String {
    let text = std::fs::read_to_string(root().join("infra/template.yaml")).expect("template");
    let start = text
        .find(&format!("\n  {resource}:\n"))
        .unwrap_or_else(|| panic!("no resource {resource}"))
        + 1;
    // The resource ends where a line is indented less than its properties.
    let mut end = text.len();
    let mut at = start;
    for line in text[start..].split_inclusive('\n').skip(1) {
        at += text[at..].find('\n').map_or(0, |i| i + 1);
        let indent = line.len() - line.trim_start().len();
        let content = line.trim();
        if !content.is_empty() && !content.starts_with('#') && indent <= 2 {
            end = at;
            break;
        }
    }
    let block = &text[start..end];
    assert!(
        block.contains(snippet),
        "{resource} no longer holds the statement this test removes: {snippet}"
    );
    format!(
        "{}{}{}",
        &text[..start],
        block.replacen(snippet, "", 1),
        &text[end..]
    )
}

/// `text` after SAM's transform, as the stack expands the real template.
fn expanded(text: &str) -> serde_json::Value {
    let dir = std::env::temp_dir().join(unique("iam-template"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (source, out) = (dir.join("template.yaml"), dir.join("template.json"));
    std::fs::write(&source, text).expect("write");
    let python = require_env("CHAT_SAM_PYTHON");
    let status = std::process::Command::new(&python)
        .arg(root().join("infra/local/check_template.py"))
        .arg("--expand")
        .arg(&source)
        .arg(&out)
        .status()
        .expect("SAM's translator runs");
    assert!(status.success(), "the SAM transform failed");
    let json = std::fs::read_to_string(&out).expect("expanded");
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&json).expect("JSON")
}

fn stack_template() -> serde_json::Value {
    let path = PathBuf::from(require_env("LOCAL_IAM_TEMPLATE"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("expanded")).expect("JSON")
}

fn iam(expanded: &serde_json::Value, mode: Mode) -> Iam {
    Iam::new(expanded, Locals::from_env(), mode).expect("the template's roles resolve")
}

/// A local IAM of its own in front of DynamoDB Local; its endpoint.
async fn checking_endpoint(iam: Iam) -> String {
    let upstream = require_env("CHAT_DYNAMODB_LOCAL_ENDPOINT");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(local_iam::server::serve(
        listener,
        Arc::new(Service::new(iam, &upstream)),
    ));
    format!("http://{address}")
}

/// The store as `function` reaches it at `endpoint`, signing with its local credentials.
fn store_as(function: &str, endpoint: &str) -> DynamoStore {
    let (key, secret) = function_credentials(function);
    let c = config();
    let sdk = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(
            c.dynamodb.region.clone(),
        ))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(sdk), c.dynamodb.tables)
}

const MESSAGES_GET_ITEM: &str = "            - Effect: Allow
              Action: dynamodb:GetItem
              Resource: !GetAtt MessagesTable.Arn
";

#[tokio::test]
async fn a_template_without_a_statement_refuses_the_matching_dynamodb_call() {
    let group = GroupId::new(1).expect("group");
    let id = MessageId::new(i128::from(fresh_id())).expect("id");
    let granted = checking_endpoint(iam(&stack_template(), Mode::Enforce)).await;
    assert_eq!(
        store_as("edit-message", &granted)
            .get_message_in(group, id)
            .await,
        Ok(None),
        "the template grants edit-message GetItem on the messages table"
    );
    let without = expanded(&template_without("EditMessageFunction", MESSAGES_GET_ITEM));
    let refusing = checking_endpoint(iam(&without, Mode::Enforce)).await;
    match store_as("edit-message", &refusing)
        .get_message_in(group, id)
        .await
    {
        Err(StoreError::Failed { cause, .. }) => {
            assert!(cause.starts_with("AccessDeniedException"), "{cause}");
            assert!(
                cause.contains("assumed-role/chat-local-EditMessageFunctionRole/edit-message")
                    && cause.contains("dynamodb:GetItem")
                    && cause.contains(":table/chat-messages"),
                "{cause}"
            );
        }
        other => panic!("expected AccessDeniedException, got {other:?}"),
    }
    // Only that call: the same function's other statements still hold.
    assert!(store_as("edit-message", &refusing)
        .get_message(id)
        .await
        .is_ok());
    // With LOCAL_IAM=off the call passes (and is logged).
    let logging = checking_endpoint(iam(&without, Mode::LogOnly)).await;
    assert_eq!(
        store_as("edit-message", &logging)
            .get_message_in(group, id)
            .await,
        Ok(None)
    );
}

#[tokio::test]
async fn the_stacks_dynamodb_refuses_unknown_keys_and_bad_signatures() {
    let endpoint = require_env("DYNAMODB_ENDPOINT");
    let c = config();
    for (key, secret, expected) in [
        ("AKIAIOSFODNN7EXAMPLE", "x", "UnrecognizedClientException"),
        (
            function_credentials("list-users").0.as_str(),
            "not-its-secret",
            "InvalidSignatureException",
        ),
    ] {
        let sdk = aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(
                c.dynamodb.region.clone(),
            ))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .build();
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(sdk),
            c.dynamodb.tables.clone(),
        );
        match store.check().await {
            Err(StoreError::Failed { cause, .. }) => {
                assert!(cause.starts_with(expected), "{key}: {cause}")
            }
            other => panic!("{key}: expected {expected}, got {other:?}"),
        }
    }
}

/// A push to a connection, signed: what the emulator checks.
struct SignedPush {
    path: String,
    headers: Vec<(String, String)>,
}

impl SignedPush {
    fn request(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: "POST",
            path: &self.path,
            query: "",
            headers: &self.headers,
            body: b"{}",
        }
    }
}

/// A Management API push to `connection` signed by `function`.
fn signed_push(function: &str, connection: &str) -> SignedPush {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let (key, secret) = function_credentials(function);
    let identity = Credentials::new(key, secret, None, None, "test").into();
    let region = config().dynamodb.region;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("execute-api")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let path = format!("/live/@connections/{connection}");
    let url = format!("http://127.0.0.1:1{path}");
    let signable = SignableRequest::new(
        "POST",
        &url,
        [("host", "127.0.0.1:1")].into_iter(),
        SignableBody::Bytes(b"{}"),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let mut headers = vec![("host".to_owned(), "127.0.0.1:1".to_owned())];
    headers.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())),
    );
    SignedPush { path, headers }
}

#[test]
fn a_template_without_a_statement_refuses_the_matching_management_call() {
    let push = signed_push("kafka-consumer", "abc=");
    let request = push.request();
    let granted = iam(&stack_template(), Mode::Enforce);
    assert!(granted
        .authorize_management_call(&request, "live", "abc=")
        .is_ok());
    let without = iam(
        &expanded(&template_without(
            "KafkaConsumerFunction",
            "                - !Sub \"arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${WebSocketStageName}/POST/@connections/*\"\n",
        )),
        Mode::Enforce,
    );
    let refusal = without
        .authorize_management_call(&request, "live", "abc=")
        .expect_err("refused");
    assert_eq!(refusal.error_type, "AccessDeniedException");
    assert!(
        refusal
            .message
            .contains("execute-api:ManageConnections on resource: arn:aws:execute-api:"),
        "{}",
        refusal.message
    );
    // The group routes publish to Kafka, never push to sockets.
    let push = signed_push("groups", "abc=");
    assert!(granted
        .authorize_management_call(&push.request(), "live", "abc=")
        .is_err());
}

#[test]
fn a_template_without_what_the_kafka_trigger_needs_is_not_enabled() {
    assert_eq!(
        iam(&stack_template(), Mode::Enforce).trigger_problems,
        Vec::<String>::new()
    );
    let without = iam(
        &expanded(&template_without(
            "KafkaConsumerFunction",
            "                - ec2:DescribeVpcs\n",
        )),
        Mode::Enforce,
    );
    assert_eq!(
        without.trigger_problems.len(),
        1,
        "{:?}",
        without.trigger_problems
    );
    assert!(
        without.trigger_problems[0].contains("ec2:DescribeVpcs"),
        "{:?}",
        without.trigger_problems
    );
}

/// A producer that connects to the broker's MSK IAM listener as `function`.
fn producer_as(function: &str) -> FutureProducer<KafkaContext> {
    let (key, secret) = function_credentials(function);
    let c = config();
    let tokens = MskIamTokens::new(
        &c.kafka.region,
        SharedCredentialsProvider::new(Credentials::new(key, secret, None, None, "test")),
        SystemTime::now,
        Duration::from_secs(5),
    );
    ClientConfig::new()
        .set("bootstrap.servers", require_env("CHAT_KAFKA_IAM_BOOTSTRAP"))
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "OAUTHBEARER")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "8000")
        .create_with_context(KafkaContext::with_msk_iam(Arc::new(tokens)))
        .expect("producer")
}

/// Produces a record no processor will apply (an unknown user's send: set aside) as `function`.
async fn produce_as(function: &str, topic: &str) -> Result<(), String> {
    let payload = serde_json::json!({"user_id": fresh_id(), "message": "local IAM probe"});
    producer_as(function)
        .send(
            FutureRecord::to(topic)
                .key("1")
                .payload(&payload.to_string()),
            Duration::from_secs(10),
        )
        .await
        .map(drop)
        .map_err(|(e, _)| e.to_string())
}

#[tokio::test]
async fn functions_reach_the_broker_only_as_their_role_allows() {
    let c = config();
    let (chat, dlq) = (
        c.kafka.chat_topic.as_str(),
        c.kafka.dead_letter_topic.as_str(),
    );
    produce_as("send-message", chat)
        .await
        .expect("send-message writes the chat topic");
    produce_as("kafka-consumer", dlq)
        .await
        .expect("the stream processor writes the dead-letter topic");
    // A role without WriteData on the topic: the broker refuses the produce.
    for (function, topic) in [("send-message", dlq), ("kafka-consumer", chat)] {
        let err = produce_as(function, topic)
            .await
            .expect_err("the role does not allow it");
        assert!(
            err.contains("TopicAuthorizationFailed"),
            "{function} → {topic}: {err}"
        );
    }
    // A role without kafka-cluster:Connect cannot even authenticate: nothing is delivered.
    let err = produce_as("list-users", chat)
        .await
        .expect_err("list-users may not connect");
    assert!(
        err.contains("MessageTimedOut"),
        "list-users → {chat}: {err}"
    );
}

#[test]
fn every_function_signs_as_itself_under_cargo_lambda_watch() {
    // make dev's functions take their credentials from the workspace manifest.
    let manifest: toml_like::Manifest = toml_like::read(&root().join("Cargo.toml"));
    for entry in std::fs::read_dir(root().join("functions")).expect("functions/") {
        let entry = entry.expect("entry");
        if !entry.path().join("Cargo.toml").exists() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let (key, secret) = function_credentials(&name);
        assert_eq!(
            manifest.value(
                &format!("workspace.metadata.lambda.bin.{name}.env"),
                "AWS_ACCESS_KEY_ID"
            ),
            Some(key),
            "{name}"
        );
        assert_eq!(
            manifest.value(
                &format!("workspace.metadata.lambda.bin.{name}.env"),
                "AWS_SECRET_ACCESS_KEY"
            ),
            Some(secret),
            "{name}"
        );
    }
}

/// Just enough of TOML to read `key = "value"` lines under `[table]` headers.
mod toml_like {
    use std::collections::BTreeMap;
    use std::path::Path;

    pub struct Manifest(BTreeMap<(String, String), String>);

    pub fn read(path: &Path) -> Manifest {
        let text = std::fs::read_to_string(path).expect("manifest");
        let mut table = String::new();
        let mut values = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = name.to_owned();
            } else if let Some((key, value)) = line.split_once('=') {
                let value = value.trim();
                if let Some(value) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    values.insert((table.clone(), key.trim().to_owned()), value.to_owned());
                }
            }
        }
        Manifest(values)
    }

    impl Manifest {
        pub fn value(&self, table: &str, key: &str) -> Option<String> {
            self.0.get(&(table.to_owned(), key.to_owned())).cloned()
        }
    }
}

const SCRAM_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:000000000000:secret:AmazonMSK_chat-AbCdEf";
const SCRAM_KEY: &str =
    "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// The template as deployed with `KafkaSource=self-managed`: SCRAM, its secret under a
/// customer-managed key.
fn self_managed() -> Locals {
    let mut locals = Locals::from_env();
    for (name, value) in [
        ("KafkaSource", "self-managed"),
        ("MskClusterArn", ""),
        ("KafkaScramSecretArn", SCRAM_SECRET),
        ("KafkaScramKmsKeyArn", SCRAM_KEY),
    ] {
        locals.parameters.insert(name.to_owned(), value.to_owned());
    }
    locals
        .secret_keys
        .insert(SCRAM_SECRET.to_owned(), SCRAM_KEY.to_owned());
    locals
}

#[test]
fn with_scram_the_publishers_and_the_trigger_read_the_secret_through_its_key() {
    let locals = self_managed();
    let via = locals.via_secrets_manager();
    let iam = Iam::new(&stack_template(), locals, Mode::Enforce).expect("resolves");
    assert_eq!(iam.trigger_problems, Vec::<String>::new());
    for function in [
        "send-message",
        "edit-message",
        "delete-message",
        "kafka-consumer",
    ] {
        let f = local_iam::identity::Identity::Function(function.to_owned());
        iam.authorize(&f, "secretsmanager:GetSecretValue", SCRAM_SECRET)
            .unwrap_or_else(|r| panic!("{function}: {}", r.message));
        iam.authorize_in(&f, "kms:Decrypt", SCRAM_KEY, &via)
            .unwrap_or_else(|r| panic!("{function}: {}", r.message));
        // The key decrypts only through Secrets Manager.
        assert!(
            iam.authorize(&f, "kms:Decrypt", SCRAM_KEY).is_err(),
            "{function}"
        );
    }
    let without = expanded(&template_without(
        "ScramSecretReaderPolicy",
        "          - Effect: Allow
            Action: kms:Decrypt
            Resource: !Ref KafkaScramKmsKeyArn
            Condition:
              StringEquals:
                kms:ViaService: !Sub \"secretsmanager.${AWS::Region}.${AWS::URLSuffix}\"
",
    ));
    let iam = Iam::new(&without, self_managed(), Mode::Enforce).expect("resolves");
    assert_eq!(iam.trigger_problems.len(), 1, "{:?}", iam.trigger_problems);
    assert!(iam.trigger_problems[0].contains("kms:Decrypt"));
}
