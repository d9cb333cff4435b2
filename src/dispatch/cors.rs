//! CORS (KrakenD's service `extra_config."security/cors"`): answers preflights before routing
//! (an allowed one echoes the method and headers asked for, as KrakenD's rs/cors does), and
//! decorates every answer to an allowed `Origin`. Sans-io: request headers in, response
//! headers out. Every answer says `Vary` with the request headers it depends on.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::config::Cors;

/// What a preflight gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Preflight {
    /// Allowed: 204 with these headers.
    Allowed(HeaderMap),
    /// Refused (origin, method or a header not allowed): 403 with this reason.
    Denied(String),
}

/// The status of an allowed preflight.
pub const PREFLIGHT_OK: StatusCode = StatusCode::NO_CONTENT;

const PREFLIGHT_VARY: HeaderValue =
    HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers");

fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN)?.to_str().ok()
}

fn allowed_origin<'h>(cors: &Cors, headers: &'h HeaderMap) -> Option<&'h str> {
    let o = origin(headers)?;
    let any = cors.allow_origins.iter().any(|a| a == "*");
    (any || cors.allow_origins.iter().any(|a| a.eq_ignore_ascii_case(o))).then_some(o)
}

fn allow_origin_value(cors: &Cors, origin: &str) -> Option<HeaderValue> {
    // With credentials the origin must be echoed: browsers refuse `*` then.
    if cors.allow_origins.iter().any(|a| a == "*") && !cors.allow_credentials {
        Some(HeaderValue::from_static("*"))
    } else {
        HeaderValue::from_str(origin).ok()
    }
}

/// `Some` when the request is a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`).
pub fn preflight(cors: &Cors, method: &Method, headers: &HeaderMap) -> Option<Preflight> {
    if method != Method::OPTIONS || origin(headers).is_none() {
        return None;
    }
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let Some(o) = allowed_origin(cors, headers) else {
        return Some(Preflight::Denied("CORS: origin not allowed".into()));
    };
    let method_ok = cors
        .allow_methods
        .iter()
        .any(|m| m.as_str().as_bytes() == requested.as_bytes());
    if !method_ok {
        return Some(Preflight::Denied(format!(
            "CORS: method {} not allowed",
            String::from_utf8_lossy(requested.as_bytes())
        )));
    }
    let asked = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for name in asked.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !cors
            .allow_headers
            .iter()
            .any(|h| h == "*" || h.eq_ignore_ascii_case(name))
        {
            return Some(Preflight::Denied(format!("CORS: header {name} not allowed")));
        }
    }
    let mut out = HeaderMap::new();
    if let Some(v) = allow_origin_value(cors, o) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    // As KrakenD's CORS module (rs/cors) does, and the Fetch standard allows: the method and
    // headers asked for (all allowed, checked above), not the whole configured lists.
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, requested.clone());
    let names: Vec<&str> = asked.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if !names.is_empty()
        && let Ok(v) = HeaderValue::from_str(&names.join(", "))
    {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age.as_secs()),
    );
    if cors.allow_credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    // The answer depends on all three request headers: a cache must not reuse it for others.
    out.insert(header::VARY, PREFLIGHT_VARY);
    Some(Preflight::Allowed(out))
}

/// Adds the CORS headers of an actual (non-preflight) answer.
pub fn decorate(cors: &Cors, request: &HeaderMap, response: &mut HeaderMap) {
    response.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(o) = allowed_origin(cors, request) else { return };
    if let Some(v) = allow_origin_value(cors, o) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if !cors.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cors.expose_headers.join(", "))
    {
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    if cors.allow_credentials {
        response.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec![Method::GET, Method::POST],
            allow_headers: vec!["authorization".into(), "content-type".into()],
            expose_headers: vec!["x-gatelet-completed".into()],
            max_age: Duration::from_secs(600),
            allow_credentials: credentials,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn preflights_are_allowed_or_denied_with_a_reason() {
        let c = cors(&["https://office.example"], true);
        let ask = |origin: &str, method: &str, hdrs: &str| {
            preflight(
                &c,
                &Method::OPTIONS,
                &headers(&[
                    ("origin", origin),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", hdrs),
                ]),
            )
        };
        let Some(Preflight::Allowed(h)) = ask("https://office.example", "POST", "Authorization, content-type") else {
            panic!("allowed")
        };
        assert_eq!(h["access-control-allow-origin"], "https://office.example");
        assert_eq!(h["access-control-allow-methods"], "POST");
        assert_eq!(h["access-control-allow-headers"], "Authorization, content-type");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(
            h["vary"],
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        );
        let Some(Preflight::Allowed(h)) = ask("https://office.example", "GET", "") else {
            panic!("allowed")
        };
        assert_eq!(h["access-control-allow-methods"], "GET");
        assert!(
            h.get("access-control-allow-headers").is_none(),
            "none asked, none listed"
        );
        assert!(matches!(ask("https://evil.example", "GET", ""), Some(Preflight::Denied(m)) if m.contains("origin")));
        assert!(
            matches!(ask("https://office.example", "DELETE", ""), Some(Preflight::Denied(m)) if m.contains("DELETE"))
        );
        assert!(
            matches!(ask("https://office.example", "GET", "x-secret"), Some(Preflight::Denied(m)) if m.contains("x-secret"))
        );
        assert_eq!(
            preflight(&c, &Method::OPTIONS, &headers(&[("origin", "https://office.example")])),
            None
        );
        assert_eq!(
            preflight(
                &c,
                &Method::GET,
                &headers(&[("origin", "x"), ("access-control-request-method", "GET")])
            ),
            None
        );
    }

    #[test]
    fn actual_answers_are_decorated_only_for_allowed_origins() {
        let c = cors(&["*"], false);
        let mut out = HeaderMap::new();
        decorate(&c, &headers(&[("origin", "https://any.example")]), &mut out);
        assert_eq!(out["access-control-allow-origin"], "*");
        assert_eq!(out["access-control-expose-headers"], "x-gatelet-completed");
        let c = cors(&["https://office.example"], false);
        let mut out = HeaderMap::new();
        decorate(&c, &headers(&[("origin", "https://evil.example")]), &mut out);
        assert!(out.get("access-control-allow-origin").is_none());
        assert_eq!(out["vary"], "Origin", "caches must not reuse it for another origin");
    }
}
