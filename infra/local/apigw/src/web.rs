//! The chat page (`web/`) and the API's descriptions (`docs/openapi.json`,
//! `docs/asyncapi.json`), served from the checkout on the API's own origin, so that the page
//! needs no CORS. Only GET and HEAD of the names below, and only where no API route matched:
//! the API's routes come first. Files are read on each request, so an edit shows on reload.
//! On AWS the same files are static objects behind CloudFront (docs/deploy.md).

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;

/// What is served, by request path: (folder of the checkout, file, content type).
const FILES: &[(&str, &str, &str, &str)] = &[
    ("/", "web", "index.html", "text/html; charset=utf-8"),
    (
        "/index.html",
        "web",
        "index.html",
        "text/html; charset=utf-8",
    ),
    ("/app.js", "web", "app.js", "text/javascript; charset=utf-8"),
    ("/app.css", "web", "app.css", "text/css; charset=utf-8"),
    ("/docs.html", "web", "docs.html", "text/html; charset=utf-8"),
    (
        "/docs.js",
        "web",
        "docs.js",
        "text/javascript; charset=utf-8",
    ),
    ("/docs.css", "web", "docs.css", "text/css; charset=utf-8"),
    ("/openapi.json", "docs", "openapi.json", "application/json"),
    (
        "/asyncapi.json",
        "docs",
        "asyncapi.json",
        "application/json",
    ),
];

/// The checkout whose files are served: `APIGW_WEB_ROOT`, else the one this binary was built in.
pub fn root() -> PathBuf {
    std::env::var_os("APIGW_WEB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.."))
}

/// The file for `method` and `path`, if it is one of ours.
pub fn find(method: &Method, path: &str) -> Option<(PathBuf, &'static str)> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    FILES
        .iter()
        .find(|(served, ..)| *served == path)
        .map(|(_, folder, file, kind)| (Path::new(folder).join(file), *kind))
}

pub async fn serve(root: &Path, file: &Path, kind: &'static str, head: bool) -> Response {
    match tokio::fs::read(root.join(file)).await {
        Ok(bytes) => {
            let length = bytes.len();
            let mut response = Response::new(if head {
                Body::empty()
            } else {
                Body::from(bytes)
            });
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            // Always revalidated: the page and the API change together.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => {
            tracing::error!(file = %file.display(), error = %e, "cannot read a served file");
            crate::reply::json_error(
                StatusCode::NOT_FOUND,
                &format!("{} is not available: {e}", file.display()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_files_and_only_for_get_and_head() {
        assert_eq!(
            find(&Method::GET, "/"),
            Some((PathBuf::from("web/index.html"), "text/html; charset=utf-8"))
        );
        assert!(find(&Method::HEAD, "/openapi.json").is_some());
        assert_eq!(find(&Method::POST, "/"), None);
        assert_eq!(find(&Method::GET, "/../Cargo.toml"), None);
        assert_eq!(find(&Method::GET, "/web/app.js"), None);
    }

    #[tokio::test]
    async fn every_listed_file_exists_in_the_checkout() {
        for (path, ..) in FILES {
            let (file, kind) = find(&Method::GET, path).expect("listed");
            let response = serve(&root(), &file, kind, false).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], kind);
        }
    }
}
