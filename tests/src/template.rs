//! Reading the deployment template (`infra/template.yaml`) and the route file in tests: its
//! resources, CloudFormation tags (`!Ref`, `!Sub`, ...), functions, key schemas and policies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::value::TaggedValue;
use serde_yaml_ng::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

pub fn template() -> Value {
    let path = root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

pub fn resources(t: &Value) -> BTreeMap<String, Value> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().expect("logical id").to_owned(), v.clone()))
        .collect()
}

pub fn of_type(t: &Value, kind: &str) -> BTreeMap<String, Value> {
    resources(t)
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

/// `!Tag value` → ("Tag", value); a plain value → None.
pub fn tagged(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((tag_name(t), &t.value)),
        _ => None,
    }
}

pub fn tag_name(t: &TaggedValue) -> String {
    t.tag.to_string().trim_start_matches('!').to_owned()
}

pub fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

/// Functions by logical id, with the binary each is built from.
pub fn functions(t: &Value) -> BTreeMap<String, String> {
    of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            assert_eq!(
                f["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda"),
                "{id}"
            );
            let binary = str_of(&f["Metadata"]["BuildProperties"]["Binary"]).to_owned();
            (id, binary)
        })
        .collect()
}

pub fn route_file() -> serde_json::Value {
    let path = root().join("infra/routes.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("infra/routes.json"))
        .expect("routes.json is JSON")
}

pub fn key_schema(table: &Value) -> Vec<(String, String)> {
    table["KeySchema"]
        .as_sequence()
        .expect("KeySchema")
        .iter()
        .map(|k| {
            (
                str_of(&k["AttributeName"]).to_owned(),
                str_of(&k["KeyType"]).to_owned(),
            )
        })
        .collect()
}

pub fn statements(t: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, f) in of_type(t, "AWS::Serverless::Function") {
        for policy in f["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for s in policy["Statement"].as_sequence().into_iter().flatten() {
                out.push((id.clone(), s.clone()));
            }
        }
    }
    for (id, p) in of_type(t, "AWS::IAM::ManagedPolicy") {
        for s in p["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            out.push((id.clone(), s.clone()));
        }
    }
    out
}

pub fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Sequence(all) => all.iter().map(|a| str_of(a).to_owned()).collect(),
        other => panic!("Action {other:?}"),
    }
}
