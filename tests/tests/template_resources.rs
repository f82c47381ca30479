//! The deployment template's resources against the code: the tables the store uses, policies
//! that name their actions and resources, and references that all resolve.

use std::collections::BTreeSet;

use chat_store::{KeyAttribute, TABLES, TTL_ATTRIBUTE};
use e2e_tests::template::*;
use serde_yaml_ng::Value;

#[test]
fn the_tables_are_those_the_store_creates_locally_with_recovery_and_expiry() {
    let t = template();
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    for spec in TABLES {
        let (tag, id) = tagged(&globals[spec.variable]).expect("!Ref to the table");
        assert_eq!(tag, "Ref");
        let table = &resources(&t)[str_of(id)];
        assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"));
        assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"), "{id:?}");
        let p = &table["Properties"];
        assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
            Some(true)
        );
        let mut expected_keys = vec![(spec.hash.name.to_owned(), "HASH".to_owned())];
        let mut expected_attrs = vec![spec.hash];
        if let Some(range) = spec.range {
            expected_keys.push((range.name.to_owned(), "RANGE".to_owned()));
            expected_attrs.push(range);
        }
        assert_eq!(key_schema(p), expected_keys, "{}", spec.variable);
        let indexes = p["GlobalSecondaryIndexes"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        assert_eq!(indexes.len(), spec.indexes.len(), "{}", spec.variable);
        for (&(name, key), index) in spec.indexes.iter().zip(&indexes) {
            assert_eq!(index["IndexName"].as_str(), Some(name));
            assert_eq!(
                key_schema(index),
                [(key.name.to_owned(), "HASH".to_owned())]
            );
            assert_eq!(index["Projection"]["ProjectionType"].as_str(), Some("ALL"));
            if !expected_attrs.contains(&key) {
                expected_attrs.push(key);
            }
        }
        let attrs: BTreeSet<(String, String)> = p["AttributeDefinitions"]
            .as_sequence()
            .expect("AttributeDefinitions")
            .iter()
            .map(|a| {
                (
                    str_of(&a["AttributeName"]).to_owned(),
                    str_of(&a["AttributeType"]).to_owned(),
                )
            })
            .collect();
        let expected: BTreeSet<(String, String)> = expected_attrs
            .iter()
            .map(|KeyAttribute { name, kind }| (name.to_string(), kind.to_string()))
            .collect();
        assert_eq!(attrs, expected, "{}", spec.variable);
        let ttl = &p["TimeToLiveSpecification"];
        if spec.ttl {
            assert_eq!(ttl["AttributeName"].as_str(), Some(TTL_ATTRIBUTE));
            assert_eq!(ttl["Enabled"].as_bool(), Some(true));
        } else {
            assert!(ttl.is_null(), "{} has no expiry", spec.variable);
        }
    }
}

/// Every statement of every policy the template defines, with where it is.
#[test]
fn policies_name_their_actions_and_resources() {
    let t = template();
    let all = statements(&t);
    assert!(all.len() > 10);
    for (id, s) in &all {
        assert_eq!(s["Effect"].as_str(), Some("Allow"), "{id}");
        for action in actions(s) {
            assert!(!action.contains('*'), "{id}: wildcard action {action}");
        }
        if s["Resource"].as_str() == Some("*") {
            // Only what IAM cannot scope: the trigger's network interfaces in the VPC.
            for action in actions(s) {
                assert!(
                    action.starts_with("ec2:") && action.contains("NetworkInterface")
                        || action.starts_with("ec2:Describe"),
                    "{id}: {action} on every resource"
                );
            }
        }
    }
    // The functions that only read have no write action, and nothing without Kafka reaches it.
    for (id, s) in &all {
        let acts = actions(s);
        if id == "GetMessagesFunction" || id == "ListUsersFunction" {
            assert!(
                acts.iter()
                    .all(|a| a == "dynamodb:GetItem" || a == "dynamodb:Query"),
                "{id}: {acts:?}"
            );
        }
        if id.starts_with("Ws") {
            assert!(
                !acts.iter().any(|a| a.starts_with("kafka")),
                "{id}: {acts:?}"
            );
        }
    }
    let pushes: Vec<&String> = all
        .iter()
        .filter(|(_, s)| actions(s).contains(&"execute-api:ManageConnections".to_owned()))
        .map(|(id, _)| id)
        .collect();
    // The stream processor pushes and cuts off; $connect closes a user's surplus socket and
    // says who came online, $disconnect who went offline, the typing route who is typing.
    assert_eq!(
        pushes,
        [
            "KafkaConsumerFunction",
            "WsConnectFunction",
            "WsDefaultFunction",
            "WsDisconnectFunction"
        ]
    );
}

/// Every `Ref`, `GetAtt` and `${...}` in the template names something that exists (cfn-lint
/// does not look inside the policies of SAM functions).
#[test]
fn every_reference_names_a_parameter_resource_or_pseudo_parameter() {
    let t = template();
    let mut known: BTreeSet<String> = resources(&t).into_keys().collect();
    known.extend(
        t["Parameters"]
            .as_mapping()
            .expect("Parameters")
            .keys()
            .map(|k| str_of(k).to_owned()),
    );
    let conditions: BTreeSet<String> = t["Conditions"]
        .as_mapping()
        .expect("Conditions")
        .keys()
        .map(|k| str_of(k).to_owned())
        .collect();
    fn walk(v: &Value, found: &mut Vec<(String, String)>, sub_locals: &BTreeSet<String>) {
        match v {
            Value::Tagged(t) => {
                let tag = tag_name(t).to_owned();
                match (tag.as_str(), &t.value) {
                    ("Ref", Value::String(name)) => found.push(("Ref".into(), name.clone())),
                    ("GetAtt", Value::String(path)) => found.push((
                        "GetAtt".into(),
                        path.split('.').next().unwrap_or_default().to_owned(),
                    )),
                    ("Sub", Value::String(text)) => sub_refs(text, found, sub_locals),
                    ("Sub", Value::Sequence(args)) => {
                        let locals: BTreeSet<String> = args[1]
                            .as_mapping()
                            .map(|m| m.keys().map(|k| str_of(k).to_owned()).collect())
                            .unwrap_or_default();
                        sub_refs(str_of(&args[0]), found, &locals);
                        walk(&args[1], found, sub_locals);
                    }
                    ("If", Value::Sequence(args)) => {
                        found.push(("Condition".into(), str_of(&args[0]).to_owned()));
                        args[1..].iter().for_each(|a| walk(a, found, sub_locals));
                    }
                    (_, inner) => walk(inner, found, sub_locals),
                }
            }
            Value::Mapping(m) => {
                for (k, v) in m {
                    if k.as_str() == Some("Condition") {
                        if let Value::String(c) = v {
                            found.push(("Condition".into(), c.clone()));
                        }
                    }
                    walk(v, found, sub_locals);
                }
            }
            Value::Sequence(s) => s.iter().for_each(|v| walk(v, found, sub_locals)),
            _ => {}
        }
    }
    fn sub_refs(text: &str, found: &mut Vec<(String, String)>, locals: &BTreeSet<String>) {
        for part in text.split("${").skip(1) {
            let name = part.split('}').next().unwrap_or_default();
            let name = name.split('.').next().unwrap_or_default();
            if !locals.contains(name) {
                found.push(("Sub".into(), name.to_owned()));
            }
        }
    }
    let mut found = Vec::new();
    walk(&t["Resources"], &mut found, &BTreeSet::new());
    walk(&t["Globals"], &mut found, &BTreeSet::new());
    walk(&t["Outputs"], &mut found, &BTreeSet::new());
    assert!(found.len() > 50, "{found:?}");
    for (kind, name) in found {
        let ok = match kind.as_str() {
            "Condition" => conditions.contains(&name),
            _ => name.starts_with("AWS::") || known.contains(&name),
        };
        assert!(ok, "{kind} {name} names nothing in the template");
    }
}

#[test]
fn the_kafka_triggers_have_the_error_controls_the_local_event_source_implements() {
    let t = template();
    let resources = resources(&t);
    let function = &resources["KafkaConsumerFunction"]["Properties"];
    assert_eq!(
        function["Timeout"].as_u64(),
        Some(local_kafka_esm::FUNCTION_TIMEOUT.as_secs()),
        "the local event source's invocation timeout is the function's"
    );
    for name in ["ChatEventsFromMsk", "ChatEventsFromSelfManagedKafka"] {
        let p = &resources[name]["Properties"];
        assert_eq!(
            p["MaximumRetryAttempts"].as_i64(),
            Some(local_kafka_esm::MAXIMUM_RETRY_ATTEMPTS),
            "{name}"
        );
        assert_eq!(p["MaximumRecordAgeInSeconds"].as_i64(), Some(-1), "{name}");
        assert_eq!(
            p["BisectBatchOnFunctionError"].as_bool(),
            Some(true),
            "{name}"
        );
        assert_eq!(
            p["FunctionResponseTypes"][0].as_str(),
            Some("ReportBatchItemFailures"),
            "{name}: the processor answers partial batch responses"
        );
        assert!(
            p["ProvisionedPollerConfig"]["MinimumPollers"].as_u64() >= Some(1),
            "{name}: the error controls need provisioned mode"
        );
        let (tag, destination) =
            tagged(&p["DestinationConfig"]["OnFailure"]["Destination"]).expect("!Sub");
        assert_eq!(
            (tag.as_str(), str_of(destination)),
            ("Sub", "kafka://${DeadLetterTopic}"),
            "{name}"
        );
    }
}
