//! What IAM checks for a DynamoDB request: the action named by `X-Amz-Target` on the table
//! (or index) its body names; for a batch, that action on each table; for a transaction, each
//! item's own action (`PutItem`, `UpdateItem`, `DeleteItem`, `ConditionCheckItem`, `GetItem`)
//! on its table, as DynamoDB's documentation on transactions and IAM describes.

use serde_json::Value;

use crate::template::Locals;

/// One action on one resource that a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub action: String,
    pub resource: String,
}

/// What `operation` (the part of `X-Amz-Target` after the dot) with `body` needs. A request
/// that names no table needs nothing here: DynamoDB refuses it as invalid anyway.
pub fn needed(operation: &str, body: &Value, locals: &Locals) -> Result<Vec<Needed>, String> {
    let table = |name: &str| locals.table_arn(name);
    let need = |action: &str, resource: String| Needed {
        action: format!("dynamodb:{action}"),
        resource,
    };
    let table_name = body.get("TableName").and_then(Value::as_str);
    Ok(match operation {
        "ListTables" | "DescribeLimits" | "DescribeEndpoints" => {
            vec![need(operation, "*".into())]
        }
        "Query" | "Scan" => match (table_name, body.get("IndexName").and_then(Value::as_str)) {
            (Some(t), Some(index)) => vec![need(operation, format!("{}/index/{index}", table(t)))],
            (Some(t), None) => vec![need(operation, table(t))],
            (None, _) => vec![],
        },
        "BatchGetItem" | "BatchWriteItem" => body
            .get("RequestItems")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|items| items.keys())
            .map(|t| need(operation, table(t)))
            .collect(),
        "TransactWriteItems" | "TransactGetItems" => {
            let mut out = Vec::new();
            for item in body
                .get("TransactItems")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some((kind, spec)) = item.as_object().and_then(|o| o.iter().next()) else {
                    continue;
                };
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    other => return Err(format!("unknown transaction item {other}")),
                };
                if let Some(t) = spec.get("TableName").and_then(Value::as_str) {
                    out.push(need(action, table(t)));
                }
            }
            out
        }
        "ExecuteStatement" | "BatchExecuteStatement" | "ExecuteTransaction" => {
            return Err(format!(
                "{operation} (PartiQL) is not checked by the local stack: use the item operations"
            ))
        }
        _ => match table_name {
            Some(t) => vec![need(operation, table(t))],
            None => vec![],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn locals() -> Locals {
        Locals::in_region("us-east-1")
    }

    fn actions(operation: &str, body: Value) -> Vec<(String, String)> {
        needed(operation, &body, &locals())
            .expect("checked")
            .into_iter()
            .map(|n| (n.action, n.resource))
            .collect()
    }

    const T: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/";

    #[test]
    fn item_calls_need_their_action_on_their_table() {
        assert_eq!(
            actions("GetItem", json!({"TableName": "m", "Key": {}})),
            [("dynamodb:GetItem".into(), format!("{T}m"))]
        );
        assert_eq!(
            actions("UpdateTimeToLive", json!({"TableName": "c"})),
            [("dynamodb:UpdateTimeToLive".into(), format!("{T}c"))]
        );
        assert_eq!(
            actions("ListTables", json!({})),
            [("dynamodb:ListTables".into(), "*".into())]
        );
    }

    #[test]
    fn index_queries_need_the_index() {
        assert_eq!(
            actions(
                "Query",
                json!({"TableName": "m", "IndexName": "message_id-index"})
            ),
            [(
                "dynamodb:Query".into(),
                format!("{T}m/index/message_id-index")
            )]
        );
        assert_eq!(
            actions("Query", json!({"TableName": "m"})),
            [("dynamodb:Query".into(), format!("{T}m"))]
        );
    }

    #[test]
    fn batches_need_the_batch_action_on_every_table() {
        let mut got = actions(
            "BatchWriteItem",
            json!({"RequestItems": {"a": [], "b": []}}),
        );
        got.sort();
        assert_eq!(
            got,
            [
                ("dynamodb:BatchWriteItem".into(), format!("{T}a")),
                ("dynamodb:BatchWriteItem".into(), format!("{T}b"))
            ]
        );
    }

    #[test]
    fn transactions_need_each_items_own_action() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "m"}},
            {"Update": {"TableName": "i"}},
            {"Delete": {"TableName": "c"}},
            {"ConditionCheck": {"TableName": "u"}}
        ]});
        assert_eq!(
            actions("TransactWriteItems", body),
            [
                ("dynamodb:PutItem".into(), format!("{T}m")),
                ("dynamodb:UpdateItem".into(), format!("{T}i")),
                ("dynamodb:DeleteItem".into(), format!("{T}c")),
                ("dynamodb:ConditionCheckItem".into(), format!("{T}u")),
            ]
        );
        assert_eq!(
            actions(
                "TransactGetItems",
                json!({"TransactItems": [{"Get": {"TableName": "m"}}]})
            ),
            [("dynamodb:GetItem".into(), format!("{T}m"))]
        );
    }

    #[test]
    fn partiql_is_refused_rather_than_guessed() {
        assert!(needed(
            "ExecuteStatement",
            &json!({"Statement": "SELECT"}),
            &locals()
        )
        .is_err());
    }
}
