//! Who signs locally. Each function runs with credentials of its own, as Lambda gives each
//! function its execution role's: the stack sets them (`local-iam env <function>`, and for
//! `cargo lambda watch` each function's `[package.metadata.lambda.env]`). Everything else on
//! the laptop (the stack's set-up, tests, the developer's tools) signs with the fallback
//! credentials of `chat_aws` (`local`/`local`), the administrator of the local account.
//! None of these are secrets: they tell the local stack which policy to check a call against.

/// The administrator's access key (and secret): `chat_aws`'s fallback credentials.
pub const ADMIN_KEY: &str = "local";

const FUNCTION_KEY_PREFIX: &str = "local-fn-";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The local account's administrator: allowed everything, as a deployer is.
    Admin,
    /// A function, by its binary's name: allowed what its role's policies allow.
    Function(String),
}

/// The access key and secret a function signs with locally.
pub fn function_credentials(function: &str) -> (String, String) {
    (
        format!("{FUNCTION_KEY_PREFIX}{function}"),
        format!("local-secret-{function}"),
    )
}

/// The identity behind an access key, and its secret; `None` for a key the stack never
/// handed out.
pub fn identity_of(access_key: &str, functions: &[&str]) -> Option<(Identity, String)> {
    if access_key == ADMIN_KEY {
        return Some((Identity::Admin, ADMIN_KEY.to_owned()));
    }
    let function = access_key.strip_prefix(FUNCTION_KEY_PREFIX)?;
    functions.contains(&function).then(|| {
        (
            Identity::Function(function.to_owned()),
            function_credentials(function).1,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_functions_of_the_template_or_the_administrator() {
        let functions = ["send-message", "list-users"];
        let (key, secret) = function_credentials("send-message");
        assert_eq!(
            identity_of(&key, &functions),
            Some((Identity::Function("send-message".into()), secret))
        );
        assert_eq!(
            identity_of("local", &functions),
            Some((Identity::Admin, "local".into()))
        );
        assert_eq!(
            identity_of(&function_credentials("gone").0, &functions),
            None
        );
        assert_eq!(identity_of("AKIAREALKEY", &functions), None);
    }
}
