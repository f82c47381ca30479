//! What every request handler shares: the routes, the live sockets, the functions' runtime,
//! identity, the chat page's files, the functions' permissions and the headers every response
//! carries; made once from the environment.

use axum::http::{HeaderName, HeaderValue};

use crate::auth::Auth;
use crate::invoke::Invoker;
use crate::routes::{Route, WebSocketRoutes};
use crate::socket::Registry;

pub struct Gateway {
    pub(crate) routes: Vec<Route>,
    pub(crate) websocket: WebSocketRoutes,
    pub(crate) sockets: Registry,
    pub(crate) invoker: Invoker,
    /// The function run as the `$connect` authorizer.
    pub(crate) websocket_authorizer: String,
    /// The issuer tokens are verified against, when some address verifies them.
    pub(crate) auth: Option<Auth>,
    /// The checkout whose chat page and API descriptions are served.
    pub(crate) web_root: std::path::PathBuf,
    /// The functions' permissions, for the Management API.
    pub(crate) iam: local_iam::Iam,
    /// The WebSocket API's stage: the Management API is at `/{stage}/@connections/`.
    pub(crate) stage: String,
    /// The security headers of every response, as CloudFront's policy adds them on AWS.
    pub(crate) security_headers: Vec<(HeaderName, HeaderValue)>,
    /// Whether `/subscribe/{group_id}` is served (`subscribe-path` in `chat_core::compat`).
    pub(crate) compat: chat_core::compat::Compat,
    /// Origins beside the gateway's own whose pages may open sockets.
    pub(crate) allowed_origins: Vec<String>,
}

/// How the gateway is set up (see the crate's documentation for the variables).
pub struct Settings {
    pub invoke_url: String,
    /// Whether some address verifies tokens (the issuer must then be configured).
    pub verifies: bool,
    /// The template after the SAM transform: the functions' policies and the security
    /// headers.
    pub template: serde_json::Value,
    pub iam_mode: local_iam::Mode,
    pub locals: local_iam::template::Locals,
    pub compat: chat_core::compat::Compat,
    /// `APIGW_ALLOWED_ORIGINS`, comma-separated: pages of other origins that may open sockets.
    pub allowed_origins: Vec<String>,
}

impl Settings {
    /// From the environment; `verifies` when any listening address checks tokens.
    pub fn from_env(verifies: bool) -> Result<Self, String> {
        let path = std::env::var("LOCAL_IAM_TEMPLATE").map_err(|_| {
            "LOCAL_IAM_TEMPLATE must name the expanded template (the local stack sets it)"
                .to_owned()
        })?;
        let template = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
            .map_err(|e| format!("the expanded template {path}: {e}"))?;
        Ok(Self {
            invoke_url: std::env::var("LAMBDA_INVOKE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:9000".into()),
            verifies,
            template,
            iam_mode: local_iam::Mode::from_env()?,
            locals: local_iam::template::Locals::from_env(),
            compat: chat_core::compat::Compat::from_env()
                .map_err(|e| format!("COMPAT_OFF: {e}"))?,
            allowed_origins: std::env::var("APIGW_ALLOWED_ORIGINS")
                .unwrap_or_default()
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        })
    }
}

impl Gateway {
    pub fn new(settings: Settings) -> Result<Self, String> {
        let invoker = Invoker::new(&settings.invoke_url)?;
        let auth = if settings.verifies {
            Some(Auth::from_env()?)
        } else {
            None
        };
        let security_headers = crate::headers::from_template(&settings.template)
            .map_err(|e| format!("the template's security headers: {e}"))?;
        let iam = local_iam::Iam::new(&settings.template, settings.locals, settings.iam_mode)
            .map_err(|e| e.to_string())?;
        let stage = iam
            .parameter("WebSocketStageName")
            .unwrap_or("live")
            .to_owned();
        let file = crate::routes::route_file();
        Ok(Self {
            routes: file.routes,
            websocket: file.websocket,
            sockets: Registry::default(),
            invoker,
            websocket_authorizer: file.websocket_authorizer,
            auth,
            web_root: crate::web::root(),
            iam,
            stage,
            security_headers,
            compat: settings.compat,
            allowed_origins: settings.allowed_origins,
        })
    }
}
