//! The HTTP API's routes, read from `infra/routes.json` (shared with the deployment
//! template), and matching a request against them as API Gateway does: by method and by path
//! segments, `{name}` matching one whole segment. A path with a trailing slash that matches
//! no route is matched without it (`/users/` reaches `GET /users`), as API Gateway's HTTP
//! APIs route it; the function still sees the path as sent (docs/api.md, trailing slashes).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
}

/// The functions behind the WebSocket API's routes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct WebSocketRoutes {
    #[serde(rename = "$connect")]
    pub connect: String,
    #[serde(rename = "$disconnect")]
    pub disconnect: String,
    /// Frames no other route selects; `None`: API Gateway drops them (a MOCK integration).
    #[serde(rename = "$default")]
    pub default: Option<String>,
    /// Frames selected by their `action` (route selection `$request.body.action`).
    #[serde(flatten)]
    pub actions: std::collections::BTreeMap<String, String>,
}

impl WebSocketRoutes {
    /// The route key and function a client frame goes to, as API Gateway selects it: a JSON
    /// object's `action`, when a route has that key, else `$default`; `None` when that is
    /// answered without a function.
    pub fn for_frame(&self, bytes: &[u8], binary: bool) -> Option<(String, String)> {
        let action = (!binary)
            .then(|| serde_json::from_slice::<serde_json::Value>(bytes).ok())
            .flatten()
            .and_then(|v| v.get("action")?.as_str().map(str::to_owned));
        match action.and_then(|a| self.actions.get_key_value(&a)) {
            Some((key, function)) => Some((key.clone(), function.clone())),
            None => self
                .default
                .clone()
                .map(|function| ("$default".to_owned(), function)),
        }
    }
}

#[derive(Deserialize)]
pub struct RouteFile {
    pub routes: Vec<Route>,
    pub websocket: WebSocketRoutes,
    /// The `$connect` authorizer's function.
    pub websocket_authorizer: String,
}

/// The routes compiled into this binary.
pub fn route_file() -> RouteFile {
    parse(include_str!("../../../routes.json")).unwrap_or_else(|e| panic!("infra/routes.json: {e}"))
}

#[cfg(test)]
pub fn routes() -> Vec<Route> {
    route_file().routes
}

pub fn parse(json: &str) -> Result<RouteFile, serde_json::Error> {
    serde_json::from_str::<RouteFile>(json)
}

/// What a request matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Match<'a> {
    Found {
        route: &'a Route,
        /// Path parameters, percent-decoded.
        parameters: Vec<(String, String)>,
    },
    /// The path is served, by other methods than the request's.
    WrongMethod {
        allowed: Vec<&'a str>,
    },
    NotFound,
}

pub fn find<'a>(routes: &'a [Route], method: &str, path: &str) -> Match<'a> {
    match find_exact(routes, method, path) {
        Match::NotFound if path.len() > 1 && path.ends_with('/') => {
            find_exact(routes, method, &path[..path.len() - 1])
        }
        found => found,
    }
}

fn find_exact<'a>(routes: &'a [Route], method: &str, path: &str) -> Match<'a> {
    let mut allowed = Vec::new();
    for route in routes {
        if let Some(parameters) = match_path(&route.path, path) {
            if route.method.eq_ignore_ascii_case(method) {
                return Match::Found { route, parameters };
            }
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        Match::NotFound
    } else {
        Match::WrongMethod { allowed }
    }
}

fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let template: Vec<&str> = template.split('/').collect();
    let actual: Vec<&str> = path.split('/').collect();
    if template.len() != actual.len() {
        return None;
    }
    let mut parameters = Vec::new();
    for (t, a) in template.iter().zip(&actual) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !a.is_empty() => {
                let value = percent_encoding::percent_decode_str(a).decode_utf8().ok()?;
                parameters.push((name.to_owned(), value.into_owned()));
            }
            Some(_) => return None,
            None if t == a => {}
            None => return None,
        }
    }
    Some(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_a_function_crate_of_the_workspace() {
        let file = route_file();
        let ws = file.websocket;
        let functions = file
            .routes
            .into_iter()
            .map(|r| r.function)
            .chain([ws.connect, ws.disconnect])
            .chain(ws.default)
            .chain(ws.actions.into_values());
        for function in functions {
            let manifest = format!(
                "{}/../../../functions/{function}/Cargo.toml",
                env!("CARGO_MANIFEST_DIR"),
            );
            assert!(std::path::Path::new(&manifest).exists(), "{function}");
        }
    }

    #[test]
    fn only_typing_frames_reach_a_function() {
        let ws = route_file().websocket;
        let typing = Some(("typing".to_owned(), "ws-default".to_owned()));
        assert_eq!(
            ws.for_frame(br#"{"action":"typing","group_id":1}"#, false),
            typing
        );
        for (frame, binary) in [
            (&br#"{"action":"typing"}"#[..], true),
            (b"typing", false),
            (b"ping", false),
            (br#"{"action":"sendMessage"}"#, false),
            (br#"{"action":["typing"]}"#, false),
            (b"", false),
        ] {
            assert_eq!(ws.for_frame(frame, binary), None, "{frame:?}");
        }
    }

    #[test]
    fn paths_match_by_segment_with_decoded_parameters() {
        let routes = routes();
        match find(&routes, "GET", "/messages/12") {
            Match::Found { route, parameters } => {
                assert_eq!(route.function, "get-messages");
                assert_eq!(parameters, vec![("group_id".into(), "12".into())]);
            }
            other => panic!("{other:?}"),
        }
        match find(&routes, "PUT", "/edit-message/a%20b") {
            Match::Found { parameters, .. } => assert_eq!(parameters[0].1, "a b"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            find(&routes, "POST", "/send-message"),
            Match::Found { .. }
        ));
        assert!(matches!(
            find(&routes, "POST", "/send-message/"),
            Match::Found { .. }
        ));
    }

    #[test]
    fn a_trailing_slash_reaches_the_route_without_it() {
        let routes = routes();
        for (method, path, route, parameters) in [
            ("POST", "/send-message/", "/send-message", vec![]),
            ("GET", "/users/", "/users", vec![]),
            (
                "GET",
                "/messages/7/",
                "/messages/{group_id}",
                vec![("group_id".to_owned(), "7".to_owned())],
            ),
        ] {
            match find(&routes, method, path) {
                Match::Found {
                    route: r,
                    parameters: p,
                } => {
                    assert_eq!((r.path.as_str(), p), (route, parameters), "{path}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        // One slash, and only where no route matches as sent.
        assert_eq!(find(&routes, "GET", "/users//"), Match::NotFound);
        assert_eq!(find(&routes, "GET", "/messages/"), Match::NotFound);
    }

    #[test]
    fn no_route_ends_in_a_slash_as_api_gateway_refuses_such_route_keys() {
        for route in routes() {
            assert!(
                route.path == "/" || !route.path.ends_with('/'),
                "{} {}",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn unknown_paths_and_wrong_methods_are_told_apart() {
        let routes = routes();
        for path in [
            "/",
            "/messages",
            "/messages/",
            "/messages/1/extra",
            "/nope",
            "/messages/%FF",
        ] {
            assert_eq!(find(&routes, "GET", path), Match::NotFound, "{path}");
        }
        assert_eq!(
            find(&routes, "DELETE", "/users/"),
            Match::WrongMethod {
                allowed: vec!["GET"]
            }
        );
        assert!(matches!(
            find(&routes, "GET", "/send-message/"),
            Match::WrongMethod { .. }
        ));
    }
}
