use serde_json::{json, Value};

use super::*;
use crate::policy::{evaluate, Decision};

fn locals() -> Locals {
    Locals {
        region: "eu-west-1".into(),
        parameters: [("Mode".to_owned(), "a".to_owned())].into_iter().collect(),
        variables: [("T_TABLE".to_owned(), "local-t".to_owned())]
            .into_iter()
            .collect(),
        secret_keys: Default::default(),
    }
}

/// A template as the SAM transform leaves it: a function, its role, a conditional managed
/// policy of the template and AWS managed ones.
fn expanded() -> Value {
    json!({
        "Parameters": {
            "Mode": {"Type": "String"},
            "Topic": {"Type": "String", "Default": "events"},
            "Subnets": {"Type": "List<AWS::EC2::Subnet::Id>", "Default": "s-1,s-2"},
            "Stage": {"Type": "String", "Default": "live"}
        },
        "Conditions": {
            "IsA": {"Fn::Equals": [{"Ref": "Mode"}, "a"]},
            "IsB": {"Fn::Not": [{"Condition": "IsA"}]}
        },
        "Resources": {
            "T": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "WEBSOCKET"}},
            "WriterA": {"Type": "AWS::IAM::ManagedPolicy", "Condition": "IsA", "Properties": {
                "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "kafka-cluster:WriteData",
                    "Resource": {"Fn::Sub": ["arn:${AWS::Partition}:kafka:${AWS::Region}:${AWS::AccountId}:topic/${C}/${Topic}",
                        {"C": {"Fn::Select": [1, {"Fn::Split": ["/", "arn:aws:kafka:r:1:cluster/name/uuid"]}]}}]}}]}}},
            "WriterB": {"Type": "AWS::IAM::ManagedPolicy", "Condition": "IsB", "Properties": {
                "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}},
            "Extra": {"Type": "AWS::IAM::Policy", "Properties": {
                "Roles": [{"Ref": "FnRole"}],
                "PolicyDocument": {"Statement": {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}}}},
            "FnRole": {"Type": "AWS::IAM::Role", "Properties": {
                "ManagedPolicyArns": [
                    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                    {"Fn::If": ["IsA", {"Ref": "WriterA"}, {"Ref": "WriterB"}]},
                    {"Fn::If": ["IsB", {"Ref": "WriterB"}, {"Ref": "AWS::NoValue"}]}
                ],
                "Policies": [{"PolicyName": "p0", "PolicyDocument": {"Statement": [
                    {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": {"Fn::GetAtt": ["T", "Arn"]}},
                    {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": {"Fn::Sub": "${T.Arn}/index/i"}},
                    {"Effect": "Allow", "Action": "execute-api:ManageConnections",
                     "Resource": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/${Stage}/POST/@connections/*"}},
                    {"Effect": "Allow", "Action": "ec2:DescribeSubnets", "Resource": {"Fn::Join": [":", [{"Fn::Select": [1, {"Ref": "Subnets"}]}, "x"]]}}
                ]}}]
            }},
            "Fn": {"Type": "AWS::Lambda::Function",
                "Metadata": {"BuildProperties": {"Binary": "the-function"}},
                "Properties": {"Role": {"Fn::GetAtt": ["FnRole", "Arn"]},
                    "Environment": {"Variables": {"T_TABLE": {"Ref": "T"}}}}}
        }
    })
}

fn statements() -> Vec<crate::policy::Statement> {
    let roles = Roles::from_expanded(&expanded(), &locals()).expect("resolves");
    let role = roles
        .by_function
        .get("the-function")
        .expect("the function's role");
    assert_eq!(role.name, "chat-local-FnRole");
    role.statements.clone()
}

#[test]
fn intrinsics_resolve_to_the_local_resources() {
    let s = statements();
    let allowed =
        |action: &str, resource: &str| evaluate(&s, action, resource) == Decision::Allowed;
    let table = "arn:aws:dynamodb:eu-west-1:000000000000:table/local-t";
    assert!(allowed("dynamodb:GetItem", table));
    assert!(allowed("dynamodb:Query", &format!("{table}/index/i")));
    assert!(!allowed("dynamodb:Query", table));
    assert!(allowed(
        "execute-api:ManageConnections",
        "arn:aws:execute-api:eu-west-1:000000000000:localws/live/POST/@connections/abc="
    ));
    assert!(!allowed(
        "execute-api:ManageConnections",
        "arn:aws:execute-api:eu-west-1:000000000000:localws/live/DELETE/@connections/abc="
    ));
    assert!(allowed("ec2:DescribeSubnets", "s-2:x"));
    assert!(allowed("logs:PutLogEvents", "anything"));
}

#[test]
fn conditions_pick_the_managed_policies_that_exist() {
    let s = statements();
    assert_eq!(
        evaluate(
            &s,
            "kafka-cluster:WriteData",
            "arn:aws:kafka:eu-west-1:000000000000:topic/name/events"
        ),
        Decision::Allowed
    );
    // WriterB (allow everything) is not created when Mode is `a`.
    assert_eq!(
        evaluate(&s, "s3:PutObject", "arn:aws:s3:::b/k"),
        Decision::ImplicitDeny
    );
}

#[test]
fn policies_attached_by_their_roles_property_count() {
    assert!(matches!(
        evaluate(
            &statements(),
            "dynamodb:DeleteItem",
            "arn:aws:dynamodb:eu-west-1:000000000000:table/local-t"
        ),
        Decision::ExplicitDeny(_)
    ));
}

#[test]
fn what_cannot_be_resolved_fails_the_load_with_its_name() {
    let mut t = expanded();
    t["Resources"]["FnRole"]["Properties"]["ManagedPolicyArns"][0] =
        json!("arn:aws:iam::aws:policy/AdministratorAccess");
    let err = Roles::from_expanded(&t, &locals()).expect_err("unknown managed policy");
    assert!(err.to_string().contains("AdministratorAccess"), "{err}");

    let mut t = expanded();
    t["Resources"]["Q"] = json!({"Type": "AWS::SQS::Queue"});
    t["Resources"]["FnRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
        ["Resource"] = json!({"Fn::GetAtt": ["Q", "Arn"]});
    let err = Roles::from_expanded(&t, &locals()).expect_err("unknown attribute");
    assert!(err.to_string().contains("GetAtt Q.Arn"), "{err}");

    let mut t = expanded();
    t["Parameters"]["Required"] = json!({"Type": "String"});
    let err = Roles::from_expanded(&t, &locals()).expect_err("parameter without a value");
    assert!(err.to_string().contains("parameter Required"), "{err}");
}
