//! Each function's permissions, read from the deployment template as CloudFormation would
//! deploy it: the SAM transform expanded (by SAM's own translator, `check_template.py
//! --expand`), so that SAM's policy templates, the managed policies it adds and its roles are
//! exactly what AWS would create; then CloudFormation's intrinsics resolved against the local
//! stack (its tables, topics, WebSocket API and a stand-in MSK cluster).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::managed;
use crate::policy::{Statement, StatementError};

/// The account every local ARN names.
pub const ACCOUNT: &str = "000000000000";
/// The stack name local physical names derive from.
pub const STACK: &str = "chat-local";
/// The local WebSocket API's id (the `{api}` of `execute-api` ARNs).
pub const WEBSOCKET_API_ID: &str = "localws";
/// The local HTTP API's id.
pub const HTTP_API_ID: &str = "localhttp";
/// The stand-in MSK cluster: its name and UUID, as in `cluster/<name>/<uuid>`.
pub const CLUSTER_NAME: &str = "chat-local";
pub const CLUSTER_UUID: &str = "00000000-0000-0000-0000-000000000000-1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("the expanded template is malformed: {0}")]
    Malformed(String),
    #[error("cannot resolve {0} locally")]
    Unresolvable(String),
    #[error(transparent)]
    Statement(#[from] StatementError),
}

/// What the local stack stands for: the values a deployment would give the template's
/// parameters and what AWS would name its resources.
#[derive(Debug, Clone)]
pub struct Locals {
    pub region: String,
    /// Parameter values; parameters not named here take the template's default.
    pub parameters: BTreeMap<String, String>,
    /// The local value of a function environment variable (a table's name, ...).
    pub variables: BTreeMap<String, String>,
    /// The customer-managed KMS key of each Secrets Manager secret that has one (reading the
    /// secret needs `kms:Decrypt` on it, through Secrets Manager).
    pub secret_keys: BTreeMap<String, String>,
}

impl Locals {
    /// The local stack in `region`, with no parameter or variable of its own (unit tests).
    pub fn in_region(region: &str) -> Self {
        Self {
            region: region.to_owned(),
            parameters: BTreeMap::new(),
            variables: BTreeMap::new(),
            secret_keys: BTreeMap::new(),
        }
    }

    /// The condition keys of a call Secrets Manager makes to KMS for a caller.
    pub fn via_secrets_manager(&self) -> crate::policy::Context {
        [(
            "kms:ViaService".to_owned(),
            format!("secretsmanager.{}.amazonaws.com", self.region),
        )]
        .into_iter()
        .collect()
    }

    pub fn partition(&self) -> &'static str {
        "aws"
    }

    pub fn cluster_arn(&self) -> String {
        format!(
            "arn:aws:kafka:{}:{ACCOUNT}:cluster/{CLUSTER_NAME}/{CLUSTER_UUID}",
            self.region
        )
    }

    /// The ARN MSK gives a topic, group or transactional id of the stand-in cluster.
    pub fn kafka_arn(&self, kind: &str, name: &str) -> String {
        format!(
            "arn:aws:kafka:{}:{ACCOUNT}:{kind}/{CLUSTER_NAME}/{CLUSTER_UUID}/{name}",
            self.region
        )
    }

    pub fn table_arn(&self, table: &str) -> String {
        format!("arn:aws:dynamodb:{}:{ACCOUNT}:table/{table}", self.region)
    }

    /// The `execute-api` ARN of a Management API call on the local WebSocket API.
    pub fn connection_arn(&self, stage: &str, method: &str, connection_id: &str) -> String {
        format!(
            "arn:aws:execute-api:{}:{ACCOUNT}:{WEBSOCKET_API_ID}/{stage}/{method}/@connections/{connection_id}",
            self.region
        )
    }
}

/// One function's execution role.
#[derive(Debug, Clone)]
pub struct Role {
    /// The role's name, as CloudFormation would name it in this stack.
    pub name: String,
    pub statements: Vec<Statement>,
}

/// Every function's role, by the binary the function runs (its crate's name).
#[derive(Debug, Clone)]
pub struct Roles {
    pub by_function: BTreeMap<String, Role>,
    /// Every parameter's local value (a list's items joined with commas).
    pub parameters: BTreeMap<String, String>,
}

impl Roles {
    /// Reads the roles of every function of `expanded` (a template after the SAM transform).
    pub fn from_expanded(expanded: &Value, locals: &Locals) -> Result<Self, TemplateError> {
        let template = Template::new(expanded, locals)?;
        let mut by_function = BTreeMap::new();
        for (id, resource) in template.resources_of("AWS::Lambda::Function") {
            if !template.exists(id)? {
                continue;
            }
            let binary = resource
                .pointer("/Metadata/BuildProperties/Binary")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TemplateError::Malformed(format!("function {id} names no binary"))
                })?;
            let role_id = match resource.pointer("/Properties/Role") {
                Some(Value::Object(o)) => match o.get("Fn::GetAtt") {
                    Some(Value::Array(a)) if a.len() == 2 => a[0].as_str().map(str::to_owned),
                    _ => None,
                },
                _ => None,
            }
            .ok_or_else(|| {
                TemplateError::Malformed(format!(
                    "function {id}: Role is not a role of this template"
                ))
            })?;
            let role = template.role(&role_id)?;
            by_function.insert(binary.to_owned(), role);
        }
        if by_function.is_empty() {
            return Err(TemplateError::Malformed("no function".into()));
        }
        let parameters = template
            .parameters
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    Value::Array(items) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (name.clone(), text)
            })
            .collect();
        Ok(Self {
            by_function,
            parameters,
        })
    }
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// What Lambda's Kafka trigger needs of its function's role besides Kafka itself (Lambda's
/// guide, "Lambda permissions for Amazon MSK event source mappings"): any one action of each
/// group, on the cluster (the `kafka:` ones) or on `*`.
const MSK_TRIGGER_NEEDS: &[&[&str]] = &[
    &["kafka:DescribeClusterV2", "kafka:DescribeCluster"],
    &["kafka:GetBootstrapBrokers"],
    &["ec2:CreateNetworkInterface"],
    &["ec2:DescribeNetworkInterfaces"],
    &["ec2:DescribeVpcs"],
    &["ec2:DeleteNetworkInterface"],
    &["ec2:DescribeSubnets"],
    &["ec2:DescribeSecurityGroups"],
    &["logs:CreateLogGroup"],
    &["logs:CreateLogStream"],
    &["logs:PutLogEvents"],
];

/// Why AWS would not enable an event source mapping of `expanded`: for each Kafka trigger, what
/// its function's role lacks (empty when every trigger may run).
pub fn event_source_problems(
    expanded: &Value,
    locals: &Locals,
    roles: &Roles,
) -> Result<Vec<String>, TemplateError> {
    let template = Template::new(expanded, locals)?;
    let mut problems = Vec::new();
    for (id, _) in template.resources_of("AWS::Lambda::EventSourceMapping") {
        if !template.exists(id)? {
            continue;
        }
        let properties = template.resolve_properties(id)?;
        let function = properties
            .get("FunctionName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(role) = roles.by_function.get(&function) else {
            problems.push(format!(
                "{id}: FunctionName {function} is no function of the template"
            ));
            continue;
        };
        let allowed = |action: &str, resource: &str| {
            crate::policy::evaluate(&role.statements, action, resource).is_allowed()
        };
        if let Some(cluster) = properties.get("EventSourceArn").and_then(Value::as_str) {
            for group in MSK_TRIGGER_NEEDS {
                let resource = if group[0].starts_with("kafka:") {
                    cluster
                } else {
                    "*"
                };
                if !group.iter().any(|action| allowed(action, resource)) {
                    problems.push(format!(
                        "{id}: the role of {function} lacks {} on {resource}",
                        group.join(" or ")
                    ));
                }
            }
        }
        for access in properties
            .get("SourceAccessConfigurations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = access
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let uri = access
                .get("URI")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !kind.starts_with("SASL_SCRAM") {
                continue;
            }
            if !allowed("secretsmanager:GetSecretValue", uri) {
                problems.push(format!(
                    "{id}: the role of {function} lacks secretsmanager:GetSecretValue on {uri}"
                ));
            }
            if let Some(key) = locals.secret_keys.get(uri) {
                let decision = crate::policy::evaluate_in(
                    &role.statements,
                    "kms:Decrypt",
                    key,
                    &locals.via_secrets_manager(),
                );
                if !decision.is_allowed() {
                    problems.push(format!(
                        "{id}: the role of {function} lacks kms:Decrypt on {key}, the key of {uri}"
                    ));
                }
            }
        }
    }
    Ok(problems)
}

struct Template<'a> {
    resources: &'a Map<String, Value>,
    conditions: &'a Map<String, Value>,
    parameters: BTreeMap<String, Value>,
    locals: &'a Locals,
    /// Which environment variable a function gets a resource's name in (`USERS_TABLE` for
    /// `!Ref UsersTable`): the local value of that variable is the resource's local name.
    variable_of: BTreeMap<String, String>,
}

impl<'a> Template<'a> {
    fn new(expanded: &'a Value, locals: &'a Locals) -> Result<Self, TemplateError> {
        let empty: &'static Map<String, Value> = &EMPTY;
        let resources = expanded
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or_else(|| TemplateError::Malformed("no Resources".into()))?;
        let conditions = expanded
            .get("Conditions")
            .and_then(Value::as_object)
            .unwrap_or(empty);
        let mut parameters = BTreeMap::new();
        for (name, spec) in expanded
            .get("Parameters")
            .and_then(Value::as_object)
            .unwrap_or(empty)
        {
            let text = match locals.parameters.get(name) {
                Some(v) => v.clone(),
                None => match spec.get("Default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => {
                        return Err(TemplateError::Unresolvable(format!(
                            "parameter {name} (it has no default and the local stack gives it no value)"
                        )))
                    }
                },
            };
            let kind = spec.get("Type").and_then(Value::as_str).unwrap_or("String");
            let value = if kind.starts_with("List<") || kind == "CommaDelimitedList" {
                Value::Array(
                    text.split(',')
                        .map(|s| Value::String(s.trim().to_owned()))
                        .collect(),
                )
            } else {
                Value::String(text)
            };
            parameters.insert(name.clone(), value);
        }
        let mut variable_of = BTreeMap::new();
        for resource in resources.values() {
            if let Some(vars) = resource
                .pointer("/Properties/Environment/Variables")
                .and_then(Value::as_object)
            {
                for (var, value) in vars {
                    if let Some(Value::String(id)) = value.get("Ref") {
                        variable_of.insert(id.clone(), var.clone());
                    }
                }
            }
        }
        Ok(Self {
            resources,
            conditions,
            parameters,
            locals,
            variable_of,
        })
    }

    fn resources_of(&self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
    }

    fn resource(&self, id: &str) -> Result<&'a Value, TemplateError> {
        self.resources
            .get(id)
            .ok_or_else(|| TemplateError::Malformed(format!("no resource {id}")))
    }

    fn kind(&self, id: &str) -> Result<&'a str, TemplateError> {
        self.resource(id)?
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| TemplateError::Malformed(format!("{id} has no Type")))
    }

    /// Whether a resource is created (its `Condition`, if any, holds).
    fn exists(&self, id: &str) -> Result<bool, TemplateError> {
        match self.resource(id)?.get("Condition").and_then(Value::as_str) {
            Some(condition) => self.condition(condition),
            None => Ok(true),
        }
    }

    fn condition(&self, name: &str) -> Result<bool, TemplateError> {
        let definition = self
            .conditions
            .get(name)
            .ok_or_else(|| TemplateError::Malformed(format!("no condition {name}")))?;
        self.truth(definition)
    }

    fn truth(&self, value: &Value) -> Result<bool, TemplateError> {
        let (function, args) = single_key(value)
            .ok_or_else(|| TemplateError::Malformed(format!("not a condition: {value}")))?;
        let list = || {
            args.as_array()
                .ok_or_else(|| TemplateError::Malformed(format!("{function} takes a list")))
        };
        match function {
            "Condition" => self.condition(args.as_str().unwrap_or_default()),
            "Fn::Equals" => {
                let a = list()?;
                if a.len() != 2 {
                    return Err(TemplateError::Malformed(
                        "Fn::Equals takes two values".into(),
                    ));
                }
                Ok(self.resolve(&a[0])? == self.resolve(&a[1])?)
            }
            "Fn::Not" => Ok(!self.truth(list()?.first().unwrap_or(&Value::Null))?),
            "Fn::And" => list()?
                .iter()
                .try_fold(true, |acc, c| Ok(acc && self.truth(c)?)),
            "Fn::Or" => list()?
                .iter()
                .try_fold(false, |acc, c| Ok(acc || self.truth(c)?)),
            other => Err(TemplateError::Unresolvable(format!(
                "condition function {other}"
            ))),
        }
    }

    /// A value with every intrinsic function replaced by what it stands for locally;
    /// `Value::Null` stands for `AWS::NoValue` (dropped from lists and objects).
    fn resolve(&self, value: &Value) -> Result<Value, TemplateError> {
        if let Some((function, args)) = single_key(value) {
            if function == "Ref" || function.starts_with("Fn::") || function == "Condition" {
                return self.intrinsic(function, args);
            }
        }
        Ok(match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.resolve(i))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .filter(|v| !v.is_null())
                    .collect(),
            ),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let v = self.resolve(v)?;
                    if !v.is_null() {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn intrinsic(&self, function: &str, args: &Value) -> Result<Value, TemplateError> {
        let list = || {
            args.as_array()
                .ok_or_else(|| TemplateError::Malformed(format!("{function} takes a list")))
        };
        match function {
            "Ref" => self.reference(
                args.as_str()
                    .ok_or_else(|| TemplateError::Malformed(format!("Ref of {args}")))?,
            ),
            "Fn::GetAtt" => {
                let (id, attribute) = match args {
                    Value::Array(a) if a.len() == 2 => (
                        a[0].as_str().unwrap_or_default().to_owned(),
                        a[1].as_str().unwrap_or_default().to_owned(),
                    ),
                    Value::String(s) => match s.split_once('.') {
                        Some((id, attribute)) => (id.to_owned(), attribute.to_owned()),
                        None => return Err(TemplateError::Malformed(format!("GetAtt {s}"))),
                    },
                    other => return Err(TemplateError::Malformed(format!("GetAtt {other}"))),
                };
                self.attribute(&id, &attribute).map(Value::String)
            }
            "Fn::Sub" => {
                let (text, vars) = match args {
                    Value::String(s) => (s.as_str(), Map::new()),
                    Value::Array(a) if a.len() == 2 => (
                        a[0].as_str()
                            .ok_or_else(|| TemplateError::Malformed("Fn::Sub text".into()))?,
                        a[1].as_object().cloned().unwrap_or_default(),
                    ),
                    other => return Err(TemplateError::Malformed(format!("Fn::Sub {other}"))),
                };
                self.substitute(text, &vars).map(Value::String)
            }
            "Fn::If" => {
                let a = list()?;
                if a.len() != 3 {
                    return Err(TemplateError::Malformed("Fn::If takes three values".into()));
                }
                let name = a[0]
                    .as_str()
                    .ok_or_else(|| TemplateError::Malformed("Fn::If condition".into()))?;
                self.resolve(if self.condition(name)? { &a[1] } else { &a[2] })
            }
            "Fn::Select" => {
                let a = list()?;
                let index = match self.resolve(a.first().unwrap_or(&Value::Null))? {
                    Value::String(s) => s.parse::<usize>().ok(),
                    Value::Number(n) => n.as_u64().map(|n| n as usize),
                    _ => None,
                }
                .ok_or_else(|| TemplateError::Malformed("Fn::Select index".into()))?;
                match self.resolve(a.get(1).unwrap_or(&Value::Null))? {
                    Value::Array(items) => items.get(index).cloned().ok_or_else(|| {
                        TemplateError::Malformed(format!(
                            "Fn::Select cannot select nonexistent value at index {index}"
                        ))
                    }),
                    other => Err(TemplateError::Malformed(format!("Fn::Select from {other}"))),
                }
            }
            "Fn::Split" => {
                let a = list()?;
                let (Some(Value::String(sep)), Ok(Value::String(text))) =
                    (a.first(), self.resolve(a.get(1).unwrap_or(&Value::Null)))
                else {
                    return Err(TemplateError::Malformed("Fn::Split".into()));
                };
                Ok(Value::Array(
                    text.split(sep.as_str())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                ))
            }
            "Fn::Join" => {
                let a = list()?;
                let (Some(Value::String(sep)), Ok(Value::Array(items))) =
                    (a.first(), self.resolve(a.get(1).unwrap_or(&Value::Null)))
                else {
                    return Err(TemplateError::Malformed("Fn::Join".into()));
                };
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect();
                Ok(Value::String(parts.join(sep)))
            }
            other => Err(TemplateError::Unresolvable(format!("the function {other}"))),
        }
    }

    fn reference(&self, name: &str) -> Result<Value, TemplateError> {
        let locals = self.locals;
        match name {
            "AWS::Region" => return Ok(Value::String(locals.region.clone())),
            "AWS::AccountId" => return Ok(Value::String(ACCOUNT.into())),
            "AWS::Partition" => return Ok(Value::String(locals.partition().into())),
            "AWS::URLSuffix" => return Ok(Value::String("amazonaws.com".into())),
            "AWS::StackName" => return Ok(Value::String(STACK.into())),
            "AWS::NoValue" => return Ok(Value::Null),
            _ => {}
        }
        if let Some(value) = self.parameters.get(name) {
            return Ok(value.clone());
        }
        self.physical_id(name).map(Value::String)
    }

    /// What `!Ref` of a resource gives locally.
    fn physical_id(&self, id: &str) -> Result<String, TemplateError> {
        if !self.exists(id)? {
            return Err(TemplateError::Malformed(format!(
                "{id} is referenced, but its condition does not hold"
            )));
        }
        if let Some(var) = self.variable_of.get(id) {
            if let Some(value) = self.locals.variables.get(var) {
                return Ok(value.clone());
            }
        }
        let resource = self.resource(id)?;
        Ok(match self.kind(id)? {
            "AWS::ApiGatewayV2::Api" => {
                match resource
                    .pointer("/Properties/ProtocolType")
                    .and_then(Value::as_str)
                {
                    Some("WEBSOCKET") => WEBSOCKET_API_ID.into(),
                    _ => HTTP_API_ID.into(),
                }
            }
            "AWS::ApiGatewayV2::Stage" => {
                match self.resolve(
                    resource
                        .pointer("/Properties/StageName")
                        .unwrap_or(&Value::Null),
                )? {
                    Value::String(s) => s,
                    other => {
                        return Err(TemplateError::Malformed(format!("{id}: StageName {other}")))
                    }
                }
            }
            "AWS::IAM::ManagedPolicy" => managed_policy_arn(id),
            "AWS::IAM::Role" => format!("{STACK}-{id}"),
            "AWS::Lambda::Function" => resource
                .pointer("/Metadata/BuildProperties/Binary")
                .and_then(Value::as_str)
                .unwrap_or(id)
                .to_owned(),
            "AWS::Cognito::UserPool" => format!("{}_local", self.locals.region),
            "AWS::Cognito::UserPoolClient" => "localclient".into(),
            "AWS::S3::Bucket" | "AWS::Logs::LogGroup" => {
                format!("{STACK}-{}", id.to_ascii_lowercase())
            }
            kind => return Err(TemplateError::Unresolvable(format!("Ref {id} ({kind})"))),
        })
    }

    /// What `!GetAtt id.attribute` gives locally.
    fn attribute(&self, id: &str, attribute: &str) -> Result<String, TemplateError> {
        let region = &self.locals.region;
        let name = || self.physical_id(id);
        Ok(match (self.kind(id)?, attribute) {
            ("AWS::DynamoDB::Table", "Arn") => self.locals.table_arn(&name()?),
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{}", name()?),
            ("AWS::Lambda::Function", "Arn") => {
                format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{}", name()?)
            }
            ("AWS::Cognito::UserPool", "Arn") => {
                format!(
                    "arn:aws:cognito-idp:{region}:{ACCOUNT}:userpool/{}",
                    name()?
                )
            }
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{}", name()?),
            ("AWS::Logs::LogGroup", "Arn") => {
                format!("arn:aws:logs:{region}:{ACCOUNT}:log-group:{}:*", name()?)
            }
            (kind, _) => {
                return Err(TemplateError::Unresolvable(format!(
                    "GetAtt {id}.{attribute} ({kind})"
                )))
            }
        })
    }

    fn substitute(&self, text: &str, vars: &Map<String, Value>) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::Malformed(format!("Fn::Sub {text}")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let value = match vars.get(name) {
                    Some(v) => self.resolve(v)?,
                    None => match name.split_once('.') {
                        Some((id, attribute)) if !name.starts_with("AWS::") => {
                            Value::String(self.attribute(id, attribute)?)
                        }
                        _ => self.reference(name)?,
                    },
                };
                match value {
                    Value::String(s) => out.push_str(&s),
                    other => {
                        return Err(TemplateError::Malformed(format!(
                            "Fn::Sub ${{{name}}} is not a string: {other}"
                        )))
                    }
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A role's statements: its inline policies, the managed policies it names, and the
    /// policies of this template that attach themselves to it.
    fn role(&self, id: &str) -> Result<Role, TemplateError> {
        if self.kind(id)? != "AWS::IAM::Role" {
            return Err(TemplateError::Malformed(format!("{id} is not a role")));
        }
        let properties = self.resolve_properties(id)?;
        let mut statements = Vec::new();
        for policy in properties
            .get("Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = policy
                .get("PolicyName")
                .and_then(Value::as_str)
                .unwrap_or("inline");
            statements.extend(document_statements(
                policy.get("PolicyDocument"),
                &format!("{id}/{name}"),
            )?);
        }
        for arn in properties
            .get("ManagedPolicyArns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let arn = arn
                .as_str()
                .ok_or_else(|| TemplateError::Malformed(format!("{id}: managed policy {arn}")))?;
            statements.extend(self.managed_policy(arn)?);
        }
        for (policy_id, policy) in self
            .resources_of("AWS::IAM::Policy")
            .chain(self.resources_of("AWS::IAM::ManagedPolicy"))
        {
            if !self.exists(policy_id)? {
                continue;
            }
            let attaches = policy
                .pointer("/Properties/Roles")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|r| r.get("Ref").and_then(Value::as_str) == Some(id));
            if attaches {
                let resolved = self.resolve_properties(policy_id)?;
                statements.extend(document_statements(
                    resolved.get("PolicyDocument"),
                    policy_id,
                )?);
            }
        }
        Ok(Role {
            name: format!("{STACK}-{id}"),
            statements,
        })
    }

    fn resolve_properties(&self, id: &str) -> Result<Value, TemplateError> {
        self.resolve(self.resource(id)?.get("Properties").unwrap_or(&Value::Null))
    }

    /// The statements of a managed policy: one of this template, or an AWS managed policy.
    fn managed_policy(&self, arn: &str) -> Result<Vec<Statement>, TemplateError> {
        for (id, _) in self.resources_of("AWS::IAM::ManagedPolicy") {
            if managed_policy_arn(id) == arn {
                let resolved = self.resolve_properties(id)?;
                return Ok(document_statements(resolved.get("PolicyDocument"), id)?);
            }
        }
        let document = managed::aws_managed_policy(arn).ok_or_else(|| {
            TemplateError::Unresolvable(format!(
                "the managed policy {arn} (add its document to infra/local/iam/src/managed.rs)"
            ))
        })?;
        Ok(document_statements(Some(&document), arn)?)
    }
}

fn managed_policy_arn(id: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/{STACK}-{id}")
}

fn single_key(value: &Value) -> Option<(&str, &Value)> {
    match value.as_object() {
        Some(map) if map.len() == 1 => map.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

fn document_statements(
    document: Option<&Value>,
    origin: &str,
) -> Result<Vec<Statement>, StatementError> {
    let statements = match document.and_then(|d| d.get("Statement")) {
        Some(Value::Array(list)) => list.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        _ => {
            return Err(StatementError {
                origin: origin.to_owned(),
                reason: "a policy document without Statement".into(),
            })
        }
    };
    statements
        .iter()
        .map(|s| Statement::parse(s, origin))
        .collect()
}

#[cfg(test)]
mod tests;
