//! IAM policy statements and how IAM evaluates identity-based policies: an explicit `Deny`
//! wins, else an `Allow` is needed, else the request is implicitly denied. `Action` matches
//! case-insensitively, `Resource` case-sensitively; both take `*` and `?` wildcards. Conditions
//! are evaluated against the request's context keys with the string operators
//! (`StringEquals`, `StringLike` and their negations); any other operator, or a key the request
//! does not carry, makes the condition false, except that a `Deny` under a condition the local
//! stack cannot evaluate is taken to apply: the local stack errs on the side of refusing.

use std::collections::BTreeMap;

use serde_json::Value;

/// The request's condition keys and their values (`kms:ViaService`, ...).
pub type Context = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement of an identity-based policy, its intrinsics already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// `Action`, or `NotAction` when `not_action` is set.
    pub actions: Vec<String>,
    pub not_action: bool,
    /// `Resource`, or `NotResource` when `not_resource` is set.
    pub resources: Vec<String>,
    pub not_resource: bool,
    /// The `Condition` block, if any.
    pub condition: Option<Value>,
    /// Where the statement comes from (a policy's name), for messages.
    pub origin: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{origin}: {reason}")]
pub struct StatementError {
    pub origin: String,
    pub reason: String,
}

impl Statement {
    /// A statement from its JSON form (as a policy document holds it, intrinsics resolved).
    pub fn parse(value: &Value, origin: &str) -> Result<Self, StatementError> {
        let fail = |reason: String| StatementError {
            origin: origin.to_owned(),
            reason,
        };
        let object = value
            .as_object()
            .ok_or_else(|| fail(format!("a statement is not an object: {value}")))?;
        let effect = match object.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => return Err(fail(format!("Effect is {other:?}, not Allow or Deny"))),
        };
        let (actions, not_action) = either(object, "Action", "NotAction").map_err(&fail)?;
        let (resources, not_resource) = either(object, "Resource", "NotResource").map_err(&fail)?;
        if object.contains_key("Principal") || object.contains_key("NotPrincipal") {
            return Err(fail(
                "an identity-based policy names no Principal".to_owned(),
            ));
        }
        Ok(Self {
            sid: object.get("Sid").and_then(Value::as_str).map(str::to_owned),
            effect,
            actions,
            not_action,
            resources,
            not_resource,
            condition: object.get("Condition").cloned(),
            origin: origin.to_owned(),
        })
    }

    fn matches_action(&self, action: &str) -> bool {
        let any = self
            .actions
            .iter()
            .any(|pattern| wildcard_match_ignoring_case(pattern, action));
        any != self.not_action
    }

    fn matches_resource(&self, resource: &str) -> bool {
        let any = self
            .resources
            .iter()
            .any(|pattern| wildcard_match(pattern, resource));
        any != self.not_resource
    }

    fn applies_to(&self, action: &str, resource: &str) -> bool {
        self.matches_action(action) && self.matches_resource(resource)
    }

    /// Whether the condition holds for `context`: `Some(true)`, `Some(false)`, or `None` when
    /// it uses what the local stack cannot evaluate.
    fn condition_holds(&self, context: &Context) -> Option<bool> {
        let Some(condition) = &self.condition else {
            return Some(true);
        };
        let operators = condition.as_object()?;
        for (operator, tests) in operators {
            for (key, expected) in tests.as_object()? {
                let expected: Vec<&str> = match expected {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                    _ => return None,
                };
                let actual = context.get(key);
                let holds = match (operator.as_str(), actual) {
                    ("StringEquals", Some(a)) => expected.contains(&a.as_str()),
                    ("StringNotEquals", Some(a)) => !expected.contains(&a.as_str()),
                    ("StringLike", Some(a)) => expected.iter().any(|e| wildcard_match(e, a)),
                    ("StringNotLike", Some(a)) => !expected.iter().any(|e| wildcard_match(e, a)),
                    ("StringEquals" | "StringNotEquals" | "StringLike" | "StringNotLike", None) => {
                        false
                    }
                    _ => return None,
                };
                if !holds {
                    return Some(false);
                }
            }
        }
        Some(true)
    }
}

/// The values of `key`, or of `not_key` (then `true`); exactly one of them must be present.
fn either(
    object: &serde_json::Map<String, Value>,
    key: &str,
    not_key: &str,
) -> Result<(Vec<String>, bool), String> {
    let (value, negated) = match (object.get(key), object.get(not_key)) {
        (Some(v), None) => (v, false),
        (None, Some(v)) => (v, true),
        (Some(_), Some(_)) => return Err(format!("both {key} and {not_key}")),
        (None, None) => return Err(format!("neither {key} nor {not_key}")),
    };
    let values = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{key} holds a non-string: {item}"))
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("{key} is neither a string nor a list: {other}")),
    };
    if values.is_empty() {
        return Err(format!("{key} is empty"));
    }
    Ok((values, negated))
}

/// IAM's wildcards: `*` any run of characters (`/` included), `?` any one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    matches_with(pattern, text, |a, b| a == b)
}

/// As [`wildcard_match`], with ASCII letters alike in either case (as IAM compares actions).
pub fn wildcard_match_ignoring_case(pattern: &str, text: &str) -> bool {
    matches_with(pattern, text, |a, b| a.eq_ignore_ascii_case(&b))
}

/// Without allocating for ASCII (every action and ARN of ours): the gateway checks a
/// policy on every push, and local IAM on every DynamoDB call.
fn matches_with(pattern: &str, text: &str, same: impl Fn(char, char) -> bool) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        glob(pattern.as_bytes(), text.as_bytes(), |a: u8, b: u8| {
            same(char::from(a), char::from(b))
        })
    } else {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        glob(&p, &t, same)
    }
}

fn glob<T: Copy + PartialEq + From<u8>>(p: &[T], t: &[T], same: impl Fn(T, T) -> bool) -> bool {
    let (any_run, any_one) = (T::from(b'*'), T::from(b'?'));
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != any_run && (p[pi] == any_one || same(p[pi], t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == any_run {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == any_run)
}

/// What IAM decided about one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No statement allows it.
    ImplicitDeny,
    /// A statement denies it (its origin).
    ExplicitDeny(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        *self == Decision::Allowed
    }
}

/// Evaluates `statements` (every identity-based policy of one role) for `action` on
/// `resource`, a request without condition keys.
pub fn evaluate(statements: &[Statement], action: &str, resource: &str) -> Decision {
    evaluate_in(statements, action, resource, &Context::new())
}

/// Evaluates `statements` for `action` on `resource`, a request carrying `context`.
pub fn evaluate_in(
    statements: &[Statement],
    action: &str,
    resource: &str,
    context: &Context,
) -> Decision {
    let mut allowed = false;
    for s in statements.iter().filter(|s| s.applies_to(action, resource)) {
        let holds = s.condition_holds(context);
        match (s.effect, holds) {
            (Effect::Deny, Some(true) | None) => return Decision::ExplicitDeny(s.origin.clone()),
            (Effect::Allow, Some(true)) => allowed = true,
            _ => {}
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::ImplicitDeny
    }
}

/// AWS's wording of a refusal, as DynamoDB and the Management API return it.
pub fn refusal_message(
    principal: &str,
    action: &str,
    resource: &str,
    decision: &Decision,
) -> String {
    match decision {
        Decision::ExplicitDeny(_) => format!(
            "User: {principal} is not authorized to perform: {action} on resource: {resource} with an explicit deny in an identity-based policy"
        ),
        _ => format!(
            "User: {principal} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statements(values: Value) -> Vec<Statement> {
        values
            .as_array()
            .expect("list")
            .iter()
            .map(|v| Statement::parse(v, "test").expect("valid"))
            .collect()
    }

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match(
            "arn:aws:dynamodb:*:*:table/t",
            "arn:aws:dynamodb:us-east-1:0:table/t"
        ));
        assert!(wildcard_match(
            "a/*/POST/@connections/*",
            "a/live/POST/@connections/x/y="
        ));
        assert!(!wildcard_match(
            "a/*/POST/@connections/*",
            "a/live/DELETE/@connections/x"
        ));
        assert!(wildcard_match("dynamodb:Get?tem", "dynamodb:GetItem"));
        assert!(!wildcard_match("table/t", "table/t/index/i"));
        assert!(wildcard_match("table/t*", "table/t/index/i"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(!wildcard_match("Dynamodb:GetItem", "dynamodb:GetItem"));
        assert!(wildcard_match_ignoring_case(
            "Dynamodb:get*",
            "dynamodb:GetItem"
        ));
        assert!(!wildcard_match_ignoring_case(
            "dynamodb:Get?",
            "dynamodb:GetItem"
        ));
        assert!(
            wildcard_match("grüß/?", "grüß/ö"),
            "? is one character, not one byte"
        );
        assert!(!wildcard_match("grüß/??", "grüß/ö"));
    }

    #[test]
    fn an_allow_is_needed_and_an_explicit_deny_wins() {
        let policy = statements(json!([
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": "arn:t/*"},
            {"Effect": "Deny", "Action": "dynamodb:Query", "Resource": "arn:t/secret"}
        ]));
        assert_eq!(
            evaluate(&policy, "dynamodb:GetItem", "arn:t/a"),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&policy, "DynamoDB:getitem", "arn:t/a"),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&policy, "dynamodb:PutItem", "arn:t/a"),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&policy, "dynamodb:GetItem", "arn:T/a"),
            Decision::ImplicitDeny
        );
        assert!(matches!(
            evaluate(&policy, "dynamodb:Query", "arn:t/secret"),
            Decision::ExplicitDeny(_)
        ));
    }

    #[test]
    fn not_action_and_not_resource_invert_the_match() {
        let policy = statements(json!([
            {"Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "NotResource": "arn:t/x"}
        ]));
        assert!(evaluate(&policy, "dynamodb:PutItem", "arn:t/y").is_allowed());
        assert!(!evaluate(&policy, "dynamodb:DeleteItem", "arn:t/y").is_allowed());
        assert!(!evaluate(&policy, "dynamodb:PutItem", "arn:t/x").is_allowed());
    }

    #[test]
    fn string_conditions_are_evaluated_against_the_requests_keys() {
        let policy = statements(json!([
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:k",
             "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}}
        ]));
        let via = |service: &str| -> Context {
            [("kms:ViaService".to_owned(), service.to_owned())]
                .into_iter()
                .collect()
        };
        assert_eq!(
            evaluate_in(
                &policy,
                "kms:Decrypt",
                "arn:k",
                &via("secretsmanager.eu-west-1.amazonaws.com")
            ),
            Decision::Allowed
        );
        assert_eq!(
            evaluate_in(
                &policy,
                "kms:Decrypt",
                "arn:k",
                &via("s3.eu-west-1.amazonaws.com")
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&policy, "kms:Decrypt", "arn:k"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn conditions_the_local_stack_cannot_evaluate_refuse() {
        let policy = statements(json!([
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
        ]));
        assert_eq!(
            evaluate(&policy, "s3:GetObject", "arn:b/k"),
            Decision::ImplicitDeny
        );
        assert!(matches!(
            evaluate(&policy, "s3:PutObject", "arn:b/k"),
            Decision::ExplicitDeny(_)
        ));
    }

    #[test]
    fn malformed_statements_are_refused_with_the_reason() {
        for (bad, says) in [
            (
                json!({"Effect": "allow", "Action": "a", "Resource": "*"}),
                "Effect",
            ),
            (
                json!({"Effect": "Allow", "Resource": "*"}),
                "neither Action",
            ),
            (
                json!({"Effect": "Allow", "Action": [], "Resource": "*"}),
                "Action is empty",
            ),
            (
                json!({"Effect": "Allow", "Action": "a", "NotAction": "b", "Resource": "*"}),
                "both",
            ),
            (
                json!({"Effect": "Allow", "Action": "a", "Resource": {"Ref": "T"}}),
                "neither a string",
            ),
            (
                json!({"Effect": "Allow", "Action": "a", "Resource": "*", "Principal": "*"}),
                "Principal",
            ),
        ] {
            let err = Statement::parse(&bad, "p").expect_err("refused");
            assert!(err.reason.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn refusals_read_as_aws_words_them() {
        let text = refusal_message(
            "arn:r",
            "dynamodb:GetItem",
            "arn:t",
            &Decision::ImplicitDeny,
        );
        assert_eq!(text, "User: arn:r is not authorized to perform: dynamodb:GetItem on resource: arn:t because no identity-based policy allows the dynamodb:GetItem action");
    }
}
