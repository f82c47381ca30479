//! The AWS managed policies a function's role may name, with the statements AWS gives them
//! (as published in the AWS Managed Policy Reference). SAM adds the first three to every role
//! it makes (logs; X-Ray with `Tracing: Active`; network interfaces with `VpcConfig`). A role
//! naming a managed policy not listed here fails the local stack at start, rather than being
//! checked against a guess.

use serde_json::{json, Value};

pub fn aws_managed_policy(arn: &str) -> Option<Value> {
    let name = arn
        .strip_prefix("arn:aws:iam::aws:policy/")
        .or_else(|| arn.strip_prefix("arn:aws-cn:iam::aws:policy/"))
        .or_else(|| arn.strip_prefix("arn:aws-us-gov:iam::aws:policy/"))?;
    let logs = [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ];
    let enis = [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ];
    let statement = |actions: Vec<&str>| json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]});
    Some(match name {
        "service-role/AWSLambdaBasicExecutionRole" => statement(logs.to_vec()),
        "AWSXrayWriteOnlyAccess" => statement(vec![
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
        ]),
        "service-role/AWSLambdaVPCAccessExecutionRole" => {
            statement(logs.iter().chain(enis.iter()).copied().collect())
        }
        "service-role/AWSLambdaMSKExecutionRole" => statement(
            [
                "kafka:DescribeCluster",
                "kafka:DescribeClusterV2",
                "kafka:GetBootstrapBrokers",
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DeleteNetworkInterface",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            ]
            .iter()
            .chain(logs.iter())
            .copied()
            .collect(),
        ),
        _ => return None,
    })
}
