//! The security headers CloudFront adds on AWS (the template's response headers policy) are
//! the ones the local API Gateway serves, on the page and on the API alike.

use e2e_tests::template::*;
use e2e_tests::{api_url, http};

/// The deployed CSP: only the page's own origin and the WebSocket API.
fn deployed_csp() -> String {
    let t = template();
    let config = &resources(&t)["WebSecurityHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]
        ["SecurityHeadersConfig"];
    let (tag, csp) = tagged(&config["ContentSecurityPolicy"]["ContentSecurityPolicy"])
        .expect("a !Sub naming the WebSocket API");
    assert_eq!(tag, "Sub");
    str_of(csp).to_owned()
}

#[test]
fn the_deployed_csp_allows_only_the_pages_origin_and_the_websocket_api() {
    let csp = deployed_csp();
    for directive in csp.split(';').map(str::trim) {
        let mut words = directive.split_whitespace();
        let name = words.next().expect("a directive");
        for source in words {
            assert!(
                ["'self'", "'none'"].contains(&source)
                    || (name == "connect-src"
                        && source
                            == "wss://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"),
                "{name} allows {source}"
            );
        }
    }
    for required in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "script-src 'self'",
    ] {
        assert!(csp.contains(required), "{csp}");
    }
}

#[tokio::test]
async fn the_gateway_serves_cloudfronts_security_headers_on_the_page_and_the_api() {
    let local_csp = deployed_csp()
        .split(';')
        .map(|d| {
            d.split_whitespace()
                .filter(|source| !source.contains("${"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("; ");
    for path in ["/", "/docs.html", "/users", "/messages/not-a-group"] {
        let reply = http()
            .get(format!("{}{path}", api_url()))
            .send()
            .await
            .expect("reply");
        let header = |name: &str| {
            reply
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-security-policy"), local_csp, "{path}");
        assert_eq!(
            header("strict-transport-security"),
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
}
