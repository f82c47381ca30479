//! The deployment template (`infra/template.yaml`) against what the code expects of it: the
//! routes the local API Gateway serves (`infra/routes.json`), the WebSocket wiring, one
//! function per crate under `functions/`, and the variables `Config` reads. No AWS account is
//! needed: these hold the contract offline, beside cfn-lint (run by `make test`).

use std::collections::{BTreeMap, BTreeSet};

use chat_core::config::{Config, KafkaSecurity, OnAws, ScramCredentials, VARIABLES};
use e2e_tests::template::*;
use serde_yaml_ng::{Mapping, Value};

#[test]
fn the_http_api_serves_exactly_the_routes_of_the_local_api_gateway() {
    let t = template();
    let binaries = functions(&t);
    let mut deployed = BTreeSet::new();
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let Some(events) = f["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (name, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &event["Properties"];
            assert_eq!(
                tagged(&p["ApiId"]).map(|(tag, v)| (tag, str_of(v).to_owned())),
                Some(("Ref".to_owned(), "HttpApi".to_owned())),
                "{id}.{name:?} is on another API"
            );
            deployed.insert((
                str_of(&p["Method"]).to_owned(),
                str_of(&p["Path"]).to_owned(),
                binaries[&id].clone(),
            ));
        }
    }
    let local: BTreeSet<(String, String, String)> = route_file()["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().expect(k).to_owned();
            (field("method"), field("path"), field("function"))
        })
        .collect();
    assert!(!local.is_empty());
    assert_eq!(
        deployed, local,
        "template routes (left) vs infra/routes.json (right)"
    );
}

#[test]
fn the_websocket_api_routes_reach_the_functions_of_the_local_emulator() {
    let t = template();
    let binaries = functions(&t);
    let res = resources(&t);
    let mut deployed = BTreeMap::new();
    for (id, route) in of_type(&t, "AWS::ApiGatewayV2::Route") {
        let p = &route["Properties"];
        assert_eq!(
            tagged(&p["ApiId"]).map(|(tag, v)| (tag, str_of(v).to_owned())),
            Some(("Ref".to_owned(), "WebSocketApi".to_owned())),
            "{id}"
        );
        let (tag, target) = tagged(&p["Target"]).expect("Target is a !Sub");
        assert_eq!(tag, "Sub");
        let integration = str_of(target)
            .strip_prefix("integrations/${")
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{id}: unexpected target {target:?}"));
        let integration = &res[integration]["Properties"];
        let route_key = str_of(&p["RouteKey"]).to_owned();
        if integration["IntegrationType"].as_str() == Some("MOCK") {
            // Answered by API Gateway: no function, and no reply to the client.
            assert_eq!(route_key, "$default", "{id}: only $default is answered so");
            assert!(p.get("RouteResponseSelectionExpression").is_none(), "{id}");
            assert_eq!(
                integration["RequestTemplates"]["$default"].as_str(),
                Some(r#"{"statusCode": 200}"#)
            );
            deployed.insert(route_key, None);
            continue;
        }
        let uri = &integration["IntegrationUri"];
        assert_eq!(integration["IntegrationType"].as_str(), Some("AWS_PROXY"));
        let (_, uri) = tagged(uri).expect("IntegrationUri is a !Sub");
        let function = str_of(uri)
            .split("functions/${")
            .nth(1)
            .and_then(|s| s.split(".Arn}").next())
            .unwrap_or_else(|| panic!("{id}: no function in {uri:?}"));
        // API Gateway may invoke it, from this API only.
        let permitted = of_type(&t, "AWS::Lambda::Permission")
            .into_values()
            .any(|perm| {
                let p = &perm["Properties"];
                tagged(&p["FunctionName"]).map(|(_, v)| str_of(v)) == Some(function)
                    && p["Principal"].as_str() == Some("apigateway.amazonaws.com")
                    && tagged(&p["SourceArn"])
                        .is_some_and(|(_, arn)| str_of(arn).contains("${WebSocketApi}/"))
            });
        assert!(
            permitted,
            "{function} has no invoke permission for the WebSocket API"
        );
        deployed.insert(route_key, Some(binaries[function].clone()));
    }
    let local: BTreeMap<String, Option<String>> = route_file()["websocket"]
        .as_object()
        .expect("websocket routes")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
        .collect();
    assert_eq!(
        local.get("$default"),
        Some(&None),
        "no function for $default"
    );
    assert_eq!(
        deployed, local,
        "template (left) vs infra/routes.json (right)"
    );
}

#[test]
fn every_function_crate_is_deployed_once_on_arm64_al2023() {
    let t = template();
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .expect("functions/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let binaries: Vec<String> = functions(&t).into_values().collect();
    let deployed: BTreeSet<String> = binaries.iter().cloned().collect();
    assert_eq!(deployed.len(), binaries.len(), "a binary is deployed twice");
    assert_eq!(deployed, crates);
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        for key in ["Runtime", "Architectures", "Handler"] {
            assert!(f["Properties"].get(key).is_none(), "{id} overrides {key}");
        }
        // The workspace root: cargo lambda builds the named binary from there.
        assert_eq!(f["Properties"]["CodeUri"].as_str(), Some(".."), "{id}");
    }
}

/// Plausible values for what CloudFormation fills in, by scenario.
struct Deployment {
    kafka_source: &'static str,
    parameters: BTreeMap<String, String>,
}

impl Deployment {
    fn new(t: &Value, kafka_source: &'static str) -> Self {
        let mut parameters: BTreeMap<String, String> = t["Parameters"]
            .as_mapping()
            .expect("Parameters")
            .iter()
            .filter_map(|(k, v)| {
                let default = match &v["Default"] {
                    Value::String(s) => s.clone(),
                    _ => return None,
                };
                Some((str_of(k).to_owned(), default))
            })
            .collect();
        for (k, v) in [
            ("KafkaSource", kafka_source),
            (
                "KafkaBootstrapServers",
                "b-1.chat.a1b2c3.c4.kafka.eu-west-1.amazonaws.com:9098,b-2.chat.a1b2c3.c4.kafka.eu-west-1.amazonaws.com:9098",
            ),
            (
                "MskClusterArn",
                "arn:aws:kafka:eu-west-1:123456789012:cluster/chat/0a1b2c3d-4e5f-6789-abcd-ef0123456789-4",
            ),
            (
                "KafkaScramSecretArn",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_chat-AbCdEf",
            ),
        ] {
            parameters.insert(k.into(), v.into());
        }
        Self {
            kafka_source,
            parameters,
        }
    }

    fn condition(&self, name: &str) -> bool {
        match name {
            "UseMsk" => self.kafka_source == "msk",
            "UseSelfManagedKafka" => self.kafka_source == "self-managed",
            // No AuthIssuer given: the stack's own user pool.
            "CreateUserPool" => true,
            other => panic!("unknown condition {other}"),
        }
    }

    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::Region" => "eu-west-1".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::StackName" => "chat".into(),
            _ => match self.parameters.get(name) {
                Some(value) => value.clone(),
                // A resource: its physical id, e.g. a table name or an API id.
                None if name.ends_with("Table") => format!("chat-{name}-1X2Y3Z4W5V6U"),
                None if name.ends_with("Api") => "a1b2c3d4e5".into(),
                None if name.ends_with("Stage") => self.parameters["WebSocketStageName"].clone(),
                None if name == "UserPoolClient" => "4m9kq1example0client0id0".into(),
                None if name == "UserPool" => "eu-west-1_AbCdEf123".into(),
                None => panic!("no stand-in for !Ref {name}"),
            },
        }
    }

    /// The value of an environment variable as deployed, `None` for `AWS::NoValue`.
    fn resolve(&self, v: &Value) -> Option<String> {
        let tagged = tagged(v);
        match tagged.as_ref().map(|(tag, value)| (tag.as_str(), *value)) {
            None => Some(str_of(v).to_owned()),
            Some(("Ref", name)) if str_of(name) == "AWS::NoValue" => None,
            Some(("Ref", name)) => Some(self.reference(str_of(name))),
            Some(("If", args)) => {
                let args = args.as_sequence().expect("!If [condition, then, else]");
                let branch = if self.condition(str_of(&args[0])) {
                    1
                } else {
                    2
                };
                self.resolve(&args[branch])
            }
            Some(("Sub", text)) => {
                let mut out = String::new();
                let mut rest = str_of(text);
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}').expect("closing }") + start;
                    out.push_str(&self.reference(&rest[start + 2..end]));
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                Some(out)
            }
            Some((tag, _)) => panic!("no stand-in for !{tag} in an environment variable"),
        }
    }

    /// Each function's environment: the globals, then its own.
    fn environments(&self, t: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
        let binaries = functions(t);
        let globals = t["Globals"]["Function"]["Environment"]["Variables"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        of_type(t, "AWS::Serverless::Function")
            .into_iter()
            .map(|(id, f)| {
                let own = f["Properties"]["Environment"]["Variables"]
                    .as_mapping()
                    .cloned()
                    .unwrap_or_default();
                let mut env = BTreeMap::new();
                for (k, v) in globals.iter().chain(own.iter()) {
                    match self.resolve(v) {
                        Some(value) => env.insert(str_of(k).to_owned(), value),
                        None => env.remove(str_of(k)),
                    };
                }
                (binaries[&id].clone(), env)
            })
            .collect()
    }
}

#[test]
fn the_template_sets_only_variables_config_reads_and_every_one_it_needs() {
    let t = template();
    let read: BTreeMap<&str, OnAws> = VARIABLES.iter().map(|v| (v.name, v.on_aws)).collect();
    let mut set: Vec<Mapping> = vec![t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .cloned()
        .expect("global environment")];
    set.extend(
        of_type(&t, "AWS::Serverless::Function")
            .values()
            .filter_map(|f| {
                f["Properties"]["Environment"]["Variables"]
                    .as_mapping()
                    .cloned()
            }),
    );
    for key in set.iter().flat_map(|m| m.keys()) {
        let key = str_of(key);
        match read.get(key) {
            None => panic!("the template sets {key}, which Config does not read"),
            Some(OnAws::SetByLambda) => panic!("{key} is reserved: Lambda sets it"),
            Some(OnAws::LocalOnly) => panic!("{key} is for local services only"),
            Some(_) => {}
        }
    }
    for source in ["msk", "self-managed"] {
        let deployment = Deployment::new(&t, source);
        for (function, env) in deployment.environments(&t) {
            for v in VARIABLES.iter().filter(|v| v.on_aws == OnAws::Required) {
                assert!(
                    env.contains_key(v.name),
                    "{function} ({source}): {} unset",
                    v.name
                );
            }
            let config = Config::from_lookup(|name| {
                // Lambda's own: the function's region.
                (name == "AWS_REGION")
                    .then(|| "eu-west-1".to_owned())
                    .or_else(|| env.get(name).cloned())
            })
            .unwrap_or_else(|e| panic!("{function} ({source}) would not start: {e}"));
            assert_eq!(config.dynamodb.endpoint, None, "{function}");
            assert!(config.dynamodb.tables.users.starts_with("chat-UsersTable-"));
            assert!(config.kafka.bootstrap_servers.ends_with(":9098"));
            match source {
                "msk" => assert_eq!(config.kafka.security, KafkaSecurity::MskIam),
                _ => assert_eq!(
                    config.kafka.security,
                    KafkaSecurity::Scram(ScramCredentials::Secret {
                        arn: deployment.parameters["KafkaScramSecretArn"].clone()
                    })
                ),
            }
            if function == "kafka-consumer" {
                assert_eq!(
                    config.ws_management_endpoint.as_deref(),
                    Some("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/live"),
                    "the consumer pushes through the WebSocket stage"
                );
            }
        }
    }
}

#[test]
fn identity_is_verified_on_every_route_and_trust_client_cannot_be_deployed() {
    let t = template();
    // Every function runs in jwt mode; none may switch it off.
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(globals["AUTH_MODE"].as_str(), Some("jwt"));
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let mode = &f["Properties"]["Environment"]["Variables"]["AUTH_MODE"];
        assert!(
            mode.is_null() || mode.as_str() == Some("jwt"),
            "{id} sets AUTH_MODE {mode:?}"
        );
    }
    // The HTTP API: a JWT authorizer on the Authorization header is every route's default,
    // and no route opts out.
    let api = &resources(&t)["HttpApi"]["Properties"]["Auth"];
    let default = str_of(&api["DefaultAuthorizer"]);
    let authorizer = &api["Authorizers"][default];
    assert_eq!(
        str_of(&authorizer["IdentitySource"]),
        "$request.header.Authorization"
    );
    assert!(!authorizer["JwtConfiguration"]["issuer"].is_null());
    assert!(!authorizer["JwtConfiguration"]["audience"].is_null());
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        if let Some(events) = f["Properties"]["Events"].as_mapping() {
            for (_, event) in events {
                assert!(
                    event["Properties"]["Auth"].is_null(),
                    "{id} overrides the authorizer"
                );
            }
        }
    }
    // $connect: the ws-authorize function as a REQUEST authorizer on ?token=.
    let routes = of_type(&t, "AWS::ApiGatewayV2::Route");
    let connect = routes
        .values()
        .find(|r| r["Properties"]["RouteKey"].as_str() == Some("$connect"))
        .expect("$connect route");
    assert_eq!(
        connect["Properties"]["AuthorizationType"].as_str(),
        Some("CUSTOM")
    );
    let (_, id) = tagged(&connect["Properties"]["AuthorizerId"]).expect("an authorizer");
    let authorizer = &resources(&t)[str_of(id)]["Properties"];
    assert_eq!(authorizer["AuthorizerType"].as_str(), Some("REQUEST"));
    assert_eq!(
        authorizer["IdentitySource"][0].as_str(),
        Some("route.request.querystring.token")
    );
    let (_, uri) = tagged(&authorizer["AuthorizerUri"]).expect("a !Sub");
    let function = str_of(uri)
        .split("functions/${")
        .nth(1)
        .and_then(|s| s.split(".Arn}").next())
        .expect("a function");
    assert_eq!(
        Some(functions(&t)[function].as_str()),
        route_file()["websocket_authorizer"].as_str()
    );
}

#[test]
fn functions_log_json_and_are_traced_by_x_ray() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(str_of(&globals["LoggingConfig"]["LogFormat"]), "JSON");
    assert_eq!(str_of(&globals["Tracing"]), "Active");
    let groups = of_type(&t, "AWS::Logs::LogGroup");
    let mut used = BTreeSet::new();
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let own = &f["Properties"];
        assert!(
            own["Tracing"].is_null(),
            "{id} overrides the global tracing"
        );
        // Only its log group of its own: SAM merges the rest of the global LoggingConfig in.
        let logging = own["LoggingConfig"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{id} names no log group of the template"));
        assert_eq!(logging.len(), 1, "{id} overrides the global logging");
        let (tag, group) = tagged(&own["LoggingConfig"]["LogGroup"]).expect("a !Ref");
        assert_eq!(tag, "Ref");
        assert!(groups.contains_key(str_of(group)), "{id}: {group:?}");
        assert!(
            used.insert(str_of(group).to_owned()),
            "{id} shares its log group"
        );
    }
    // Every log group is kept for a while, not forever (Lambda's own would be).
    for (id, group) in &groups {
        let retention = tagged(&group["Properties"]["RetentionInDays"])
            .map(|(tag, v)| (tag, str_of(v).to_owned()));
        assert_eq!(
            retention,
            Some(("Ref".to_owned(), "LogRetentionDays".to_owned())),
            "{id}"
        );
    }
}

/// Both APIs write access logs to log groups of the template.
#[test]
fn both_api_stages_write_access_logs() {
    let t = template();
    let groups = of_type(&t, "AWS::Logs::LogGroup");
    let http = &resources(&t)["HttpApi"]["Properties"]["AccessLogSettings"];
    let ws = &of_type(&t, "AWS::ApiGatewayV2::Stage")["WebSocketStage"]["Properties"]
        ["AccessLogSettings"];
    for (api, settings) in [("HttpApi", http), ("WebSocketStage", ws)] {
        let (tag, target) = tagged(&settings["DestinationArn"]).expect("a !GetAtt");
        assert_eq!(tag, "GetAtt", "{api}");
        let group = str_of(target).trim_end_matches(".Arn");
        assert!(groups.contains_key(group), "{api}: {group}");
        let format = str_of(&settings["Format"]);
        let line: serde_json::Value = serde_json::from_str(format).expect("a JSON line");
        assert!(
            line.get("status").is_some() && line.get("requestId").is_some(),
            "{api}"
        );
        // No token or connection id in the logs.
        assert!(
            !format.contains("connectionId") && !format.contains("header"),
            "{api}"
        );
    }
}

/// CloudFront serves the page from the bucket and forwards every route of the HTTP API to it:
/// one origin for both, as locally.
#[test]
fn the_page_and_every_http_route_share_cloudfronts_origin() {
    let t = template();
    let distribution = &of_type(&t, "AWS::CloudFront::Distribution")["WebDistribution"];
    let config = &distribution["Properties"]["DistributionConfig"];
    assert_eq!(
        str_of(&config["DefaultCacheBehavior"]["TargetOriginId"]),
        "page"
    );
    let behaviors = config["CacheBehaviors"].as_sequence().expect("behaviors");
    fn matches(pattern: &str, path: &str) -> bool {
        match pattern.split_once('*') {
            Some((prefix, "")) => path.starts_with(prefix),
            _ => pattern == path,
        }
    }
    for route in route_file()["routes"].as_array().expect("routes") {
        let path = route["path"].as_str().expect("path");
        let method = route["method"].as_str().expect("method");
        let behavior = behaviors
            .iter()
            .find(|b| matches(str_of(&b["PathPattern"]), path))
            .unwrap_or_else(|| panic!("no cache behavior forwards {path}"));
        assert_eq!(str_of(&behavior["TargetOriginId"]), "api", "{path}");
        let methods: Vec<&str> = behavior["AllowedMethods"]
            .as_sequence()
            .expect("methods")
            .iter()
            .map(str_of)
            .collect();
        assert!(methods.contains(&method), "{path}: {method} not forwarded");
        // Managed policies: caching disabled, every viewer header (the token) but Host.
        assert_eq!(
            str_of(&behavior["CachePolicyId"]),
            "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
        );
        assert_eq!(
            str_of(&behavior["OriginRequestPolicyId"]),
            "b689b0a8-53d0-40ab-baf2-68738e2966ac"
        );
    }
}

/// A parameter's `AllowedPattern`, as CloudFormation applies it (to the whole value).
fn allowed(t: &Value, parameter: &str) -> regex_lite::Regex {
    let pattern = str_of(&t["Parameters"][parameter]["AllowedPattern"]);
    regex_lite::Regex::new(pattern).unwrap_or_else(|e| panic!("{parameter}: {e}"))
}

#[test]
fn parameters_refuse_at_once_what_would_fail_later_on_aws() {
    let t = template();
    // The trigger's on-failure destination kafka://<topic> must have 12 characters or more.
    let dead_letter = allowed(&t, "DeadLetterTopic");
    for length in 1..=249 {
        let topic = "d".repeat(length);
        assert_eq!(
            dead_letter.is_match(&topic),
            "kafka://".len() + length >= 12,
            "a dead-letter topic of {length} characters"
        );
    }
    assert!(dead_letter.is_match("chat-events-dlq"));
    // The self-managed trigger names two subnets: one is refused before anything is made.
    let subnets = allowed(&t, "SubnetIds");
    assert!(!subnets.is_match("subnet-0123456789abcdef0"));
    assert!(!subnets.is_match(""));
    assert!(subnets.is_match("subnet-0123456789abcdef0,subnet-0fedcba9876543210"));
    assert!(subnets.is_match("subnet-01234567,subnet-89abcdef,subnet-0a1b2c3d"));
    // SCRAM's secret is under a customer-managed key, which the roles must be able to use.
    let key = allowed(&t, "KafkaScramKmsKeyArn");
    assert!(key.is_match(""));
    assert!(
        key.is_match("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    );
    assert!(!key.is_match("alias/aws/secretsmanager"));
    // CloudFront takes only a global web ACL, made in us-east-1 (infra/waf.yaml's output).
    let acl = allowed(&t, "WebAclArn");
    assert!(acl.is_match(""));
    assert!(acl.is_match(
        "arn:aws:wafv2:us-east-1:123456789012:global/webacl/chat-rate/a1b2c3d4-5678-90ab-cdef-0123456789ab"
    ));
    assert!(!acl.is_match(
        "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/chat-rate/a1b2c3d4-5678-90ab-cdef-0123456789ab"
    ));
    let rule =
        serde_yaml_ng::to_string(&t["Rules"]["SelfManagedKafkaNeedsItsSecret"]).expect("rule");
    assert!(rule.contains("KafkaScramKmsKeyArn"), "{rule}");
}

#[test]
fn the_websocket_stage_deploys_every_change_of_its_routes() {
    let t = template();
    assert!(
        of_type(&t, "AWS::ApiGatewayV2::Deployment").is_empty(),
        "a static deployment is never redeployed when routes or the authorizer change"
    );
    let stages = of_type(&t, "AWS::ApiGatewayV2::Stage");
    let stage = &stages["WebSocketStage"];
    assert_eq!(stage["Properties"]["AutoDeploy"].as_bool(), Some(true));
    let depends: BTreeSet<String> = stage["DependsOn"]
        .as_sequence()
        .expect("DependsOn")
        .iter()
        .map(|d| str_of(d).to_owned())
        .collect();
    let routes: BTreeSet<String> = of_type(&t, "AWS::ApiGatewayV2::Route")
        .into_keys()
        .collect();
    assert_eq!(
        depends, routes,
        "the first deployment must hold every route"
    );
}

#[test]
fn the_stream_processor_and_the_authorizer_have_concurrency_of_their_own() {
    let t = template();
    let functions = of_type(&t, "AWS::Serverless::Function");
    for (id, parameter) in [
        ("KafkaConsumerFunction", "StreamProcessorConcurrency"),
        ("WsAuthorizeFunction", "AuthorizerConcurrency"),
    ] {
        let reserved = tagged(&functions[id]["Properties"]["ReservedConcurrentExecutions"])
            .map(|(tag, v)| (tag, str_of(v).to_owned()));
        assert_eq!(
            reserved,
            Some(("Ref".to_owned(), parameter.to_owned())),
            "{id}"
        );
        assert!(t["Parameters"][parameter]["Default"].as_u64().unwrap_or(0) >= 1);
    }
}

/// checkov runs in `make test`; what it reports is fixed, or skipped here with the reason.
#[test]
fn every_checkov_skip_says_why() {
    let t = template();
    let mut skips = 0;
    for (id, resource) in resources(&t) {
        for skip in resource["Metadata"]["checkov"]["skip"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            skips += 1;
            let check = str_of(&skip["id"]);
            assert!(check.starts_with("CKV_"), "{id}: {check}");
            let why = skip["comment"].as_str().unwrap_or_default();
            assert!(
                why.split_whitespace().count() >= 8,
                "{id} skips {check} without a reason"
            );
        }
    }
    assert!(skips > 0);
}
