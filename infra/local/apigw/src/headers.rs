//! The security headers CloudFront adds to every response of the deployed page and API (the
//! template's `AWS::CloudFront::ResponseHeadersPolicy`), added here to every response alike.
//! One difference: the CSP's `connect-src` names the WebSocket API's host on AWS, where it is
//! another origin; locally the sockets are on the page's own origin, which `'self'` covers.

use axum::http::{HeaderName, HeaderValue};
use serde_json::Value;

/// The headers of the template's response headers policy (`expanded`: the template after the
/// SAM transform).
pub fn from_template(expanded: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let policy = expanded
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .find(|(_, r)| {
            r.get("Type").and_then(Value::as_str) == Some("AWS::CloudFront::ResponseHeadersPolicy")
        })
        .map(|(_, r)| r)
        .ok_or("the template has no AWS::CloudFront::ResponseHeadersPolicy")?;
    let config = policy
        .pointer("/Properties/ResponseHeadersPolicyConfig/SecurityHeadersConfig")
        .ok_or("the response headers policy has no SecurityHeadersConfig")?;
    let mut headers = Vec::new();
    let mut add = |name: &'static str, value: String| -> Result<(), String> {
        let value = HeaderValue::from_str(&value).map_err(|e| format!("{name}: {e}"))?;
        headers.push((HeaderName::from_static(name), value));
        Ok(())
    };
    if let Some(csp) = config.get("ContentSecurityPolicy") {
        let text = match &csp["ContentSecurityPolicy"] {
            Value::String(s) => s.clone(),
            other => other
                .get("Fn::Sub")
                .and_then(Value::as_str)
                .ok_or("the CSP is neither a string nor a !Sub")?
                .to_owned(),
        };
        add("content-security-policy", local_csp(&text))?;
    }
    if let Some(hsts) = config.get("StrictTransportSecurity") {
        let mut value = format!(
            "max-age={}",
            hsts["AccessControlMaxAgeSec"].as_u64().unwrap_or(0)
        );
        if hsts["IncludeSubdomains"].as_bool() == Some(true) {
            value.push_str("; includeSubDomains");
        }
        if hsts["Preload"].as_bool() == Some(true) {
            value.push_str("; preload");
        }
        add("strict-transport-security", value)?;
    }
    if config.get("ContentTypeOptions").is_some() {
        add("x-content-type-options", "nosniff".into())?;
    }
    if let Some(frame) = config.get("FrameOptions") {
        add(
            "x-frame-options",
            frame["FrameOption"].as_str().unwrap_or("DENY").to_owned(),
        )?;
    }
    if let Some(referrer) = config.get("ReferrerPolicy") {
        add(
            "referrer-policy",
            referrer["ReferrerPolicy"]
                .as_str()
                .unwrap_or("no-referrer")
                .to_owned(),
        )?;
    }
    Ok(headers)
}

/// The CSP without the sources that name a template resource's host (`wss://${WebSocketApi}...`).
fn local_csp(template: &str) -> String {
    template
        .split(';')
        .map(|directive| {
            directive
                .split_whitespace()
                .filter(|source| !source.contains("${"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_policy_becomes_headers_with_the_websocket_host_dropped_from_the_csp() {
        let expanded = json!({"Resources": {"H": {"Type": "AWS::CloudFront::ResponseHeadersPolicy",
        "Properties": {"ResponseHeadersPolicyConfig": {"SecurityHeadersConfig": {
            "ContentSecurityPolicy": {"Override": true, "ContentSecurityPolicy": {"Fn::Sub":
                "default-src 'none'; connect-src 'self' wss://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}; frame-ancestors 'none'"}},
            "StrictTransportSecurity": {"AccessControlMaxAgeSec": 31536000, "IncludeSubdomains": true, "Override": true},
            "ContentTypeOptions": {"Override": true},
            "FrameOptions": {"FrameOption": "DENY", "Override": true},
            "ReferrerPolicy": {"ReferrerPolicy": "no-referrer", "Override": true}
        }}}}}});
        let headers: Vec<(String, String)> = from_template(&expanded)
            .expect("headers")
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().expect("text").to_owned()))
            .collect();
        assert_eq!(
            headers,
            [
                (
                    "content-security-policy",
                    "default-src 'none'; connect-src 'self'; frame-ancestors 'none'"
                ),
                (
                    "strict-transport-security",
                    "max-age=31536000; includeSubDomains"
                ),
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("referrer-policy", "no-referrer"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(from_template(&json!({"Resources": {}})).is_err());
    }
}
