//! `local-iam`: the local stack refuses what IAM would refuse on AWS.
//!
//! Every function runs under an identity of its own ([`identity`]) and signs its AWS calls
//! with it (SigV4, [`sigv4`]). Each call is checked against the statements
//! `infra/template.yaml` gives that function's role ([`template`], [`policy`]), read from the
//! template after SAM's own transform, so that SAM's expansion is the one checked:
//! - DynamoDB: a proxy in front of DynamoDB Local checks every request, each item of a batch or
//!   transaction and index queries as IAM does ([`dynamodb`]), and answers a refusal with
//!   DynamoDB's `AccessDeniedException`;
//! - the Management API: the local API Gateway checks `execute-api:ManageConnections` on each
//!   `@connections` call and refuses with a 403;
//! - Kafka: the local broker authenticates functions by their MSK IAM tokens and authorizes
//!   each request as MSK maps Kafka operations to `kafka-cluster:*` actions ([`kafka`]),
//!   asking this service (`infra/local/kafka/iam`).
//!
//! With `LOCAL_IAM=off` nothing is refused, but every call that would be is still logged.

pub mod dynamodb;
pub mod identity;
pub mod kafka;
pub mod managed;
pub mod policy;
pub mod server;
pub mod sigv4;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use identity::Identity;
use policy::Decision;
use template::{Locals, Roles, TemplateError, ACCOUNT};

/// Whether refusals are enforced or only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// `LOCAL_IAM=off`: for debugging; every call that would be refused is logged.
    LogOnly,
}

impl Mode {
    /// From `LOCAL_IAM` (`on`, the default, or `off`).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("LOCAL_IAM").as_deref() {
            Ok("on") | Ok("") | Err(_) => Ok(Mode::Enforce),
            Ok("off") => Ok(Mode::LogOnly),
            Ok(other) => Err(format!("LOCAL_IAM is `{other}`; use `on` or `off`")),
        }
    }
}

/// A refused call: AWS's error type for it and what to tell the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `AccessDeniedException`, `InvalidSignatureException`, ...
    pub error_type: &'static str,
    pub message: String,
}

impl Refusal {
    /// How AWS answers a request whose signature does not hold.
    pub fn of_signature(e: &sigv4::SignatureError) -> Self {
        use sigv4::SignatureError::*;
        let error_type = match e {
            Missing => "MissingAuthenticationTokenException",
            UnknownKey(_) => "UnrecognizedClientException",
            Malformed(_) => "IncompleteSignatureException",
            Mismatch | Expired(_) => "InvalidSignatureException",
        };
        Self {
            error_type,
            message: e.to_string(),
        }
    }
}

/// The template's roles, and how the local stack checks calls against them.
pub struct Iam {
    pub locals: Locals,
    pub roles: Roles,
    pub mode: Mode,
    /// Why Lambda would not enable a Kafka trigger of the template (its role lacks what the
    /// trigger needs); the local event source is not started while there are any.
    pub trigger_problems: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl Iam {
    /// From the expanded template at `path`, against the local stack of this environment.
    pub fn load(path: &Path, locals: Locals, mode: Mode) -> Result<Self, LoadError> {
        let read = |cause: String| LoadError::Read {
            path: path.display().to_string(),
            cause,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
        let expanded: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| read(e.to_string()))?;
        Ok(Self::new(&expanded, locals, mode)?)
    }

    pub fn new(
        expanded: &serde_json::Value,
        locals: Locals,
        mode: Mode,
    ) -> Result<Self, TemplateError> {
        let roles = Roles::from_expanded(expanded, &locals)?;
        let trigger_problems = template::event_source_problems(expanded, &locals, &roles)?;
        Ok(Self {
            locals,
            roles,
            mode,
            trigger_problems,
        })
    }

    /// The identity behind an access key and its secret.
    pub fn identity_of(&self, access_key: &str) -> Option<(Identity, String)> {
        let functions: Vec<&str> = self.roles.by_function.keys().map(String::as_str).collect();
        identity::identity_of(access_key, &functions)
    }

    /// The secret of an access key, for verifying signatures.
    pub fn secret_of(&self, access_key: &str) -> Option<String> {
        self.identity_of(access_key).map(|(_, secret)| secret)
    }

    /// The principal AWS would name in a refusal.
    pub fn principal_arn(&self, identity: &Identity) -> String {
        match identity {
            Identity::Admin => format!("arn:aws:iam::{ACCOUNT}:user/local-admin"),
            Identity::Function(f) => {
                let role = self
                    .roles
                    .by_function
                    .get(f)
                    .map_or("unknown-role", |r| r.name.as_str());
                format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{f}")
            }
        }
    }

    /// Whether `identity` may do `action` on `resource`; a refusal is logged, and returned
    /// unless the mode only logs.
    pub fn authorize(
        &self,
        identity: &Identity,
        action: &str,
        resource: &str,
    ) -> Result<(), Refusal> {
        self.authorize_in(identity, action, resource, &policy::Context::new())
    }

    /// [`Iam::authorize`] for a request carrying condition keys.
    pub fn authorize_in(
        &self,
        identity: &Identity,
        action: &str,
        resource: &str,
        context: &policy::Context,
    ) -> Result<(), Refusal> {
        let decision = match identity {
            Identity::Admin => Decision::Allowed,
            Identity::Function(f) => match self.roles.by_function.get(f) {
                Some(role) => policy::evaluate_in(&role.statements, action, resource, context),
                None => Decision::ImplicitDeny,
            },
        };
        if decision.is_allowed() {
            return Ok(());
        }
        let message =
            policy::refusal_message(&self.principal_arn(identity), action, resource, &decision);
        match self.mode {
            Mode::Enforce => {
                tracing::warn!(%message, "local IAM refused a call");
                Err(Refusal {
                    error_type: "AccessDeniedException",
                    message,
                })
            }
            Mode::LogOnly => {
                tracing::warn!(%message, "LOCAL_IAM=off: this call would be refused on AWS");
                Ok(())
            }
        }
    }

    /// Who signed `request` for `service` in the local region, if the signature holds. With
    /// `LOCAL_IAM=off` a bad signature is logged and the administrator assumed.
    pub fn signer(
        &self,
        request: &sigv4::SignedRequest<'_>,
        service: &str,
    ) -> Result<Identity, Refusal> {
        let checked = sigv4::verify(request, |key| self.secret_of(key), Utc::now())
            .map_err(|e| Refusal::of_signature(&e))
            .and_then(|signer| {
                if signer.service != service || signer.region != self.locals.region {
                    return Err(Refusal {
                        error_type: "InvalidSignatureException",
                        message: format!(
                            "Credential should be scoped to {service} in {}, not {} in {}",
                            self.locals.region, signer.service, signer.region
                        ),
                    });
                }
                self.identity_of(&signer.access_key)
                    .map(|(identity, _)| identity)
                    .ok_or_else(|| {
                        Refusal::of_signature(&sigv4::SignatureError::UnknownKey(signer.access_key))
                    })
            });
        match (checked, self.mode) {
            (Ok(identity), _) => Ok(identity),
            (Err(refusal), Mode::Enforce) => {
                tracing::warn!(error_type = refusal.error_type, message = %refusal.message, "refused a signature");
                Err(refusal)
            }
            (Err(refusal), Mode::LogOnly) => {
                tracing::warn!(message = %refusal.message, "LOCAL_IAM=off: this signature would be refused on AWS");
                Ok(Identity::Admin)
            }
        }
    }

    /// Checks a Management API call (`POST`, `GET` or `DELETE` on `@connections/{id}` of
    /// `stage`) signed as `request`.
    pub fn authorize_management_call(
        &self,
        request: &sigv4::SignedRequest<'_>,
        stage: &str,
        connection_id: &str,
    ) -> Result<Identity, Refusal> {
        let identity = self.signer(request, "execute-api")?;
        let resource = self
            .locals
            .connection_arn(stage, request.method, connection_id);
        self.authorize(&identity, "execute-api:ManageConnections", &resource)?;
        Ok(identity)
    }

    /// A parameter's value in the local stack (its local value, else the template's default).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.roles.parameters.get(name).map(String::as_str)
    }
}

impl Locals {
    /// The local stack's values: its region, the variables the functions read (their local
    /// values or `chat_core::config`'s defaults), and the parameters a deployment would pass,
    /// pointed at the local resources (a stand-in MSK cluster, the local consumer group).
    pub fn from_env() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut variables = BTreeMap::new();
        for variable in chat_core::config::VARIABLES {
            if let Some(value) = env(variable.name).or(variable.default.map(str::to_owned)) {
                variables.insert(variable.name.to_owned(), value);
            }
        }
        let region = variables
            .get("AWS_REGION")
            .cloned()
            .unwrap_or_else(|| "us-east-1".into());
        let mut locals = Locals {
            variables,
            ..Locals::in_region(&region)
        };
        let var = |name: &str| locals.variables.get(name).cloned().unwrap_or_default();
        let mut parameters: BTreeMap<String, String> = [
            ("KafkaSource", "msk".to_owned()),
            ("KafkaBootstrapServers", var("KAFKA_BOOTSTRAP_SERVERS")),
            ("MskClusterArn", locals.cluster_arn()),
            ("KafkaScramSecretArn", String::new()),
            ("KafkaScramKmsKeyArn", String::new()),
            ("ChatTopic", var("CHAT_TOPIC")),
            ("DeadLetterTopic", var("DEAD_LETTER_TOPIC")),
            ("SubnetIds", "subnet-0local0a,subnet-0local0b".to_owned()),
            ("SecurityGroupIds", "sg-0local".to_owned()),
            ("AuthIssuer", String::new()),
            ("AuthAudience", String::new()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // The local event source's group (the stack sets it), else the template's default.
        if let Some(group) = env("ESM_GROUP_ID") {
            parameters.insert("ConsumerGroupId".into(), group);
        }
        locals.parameters = parameters;
        locals
    }
}
