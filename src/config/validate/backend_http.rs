//! A backend's HTTP client namespaces: `backend/http` (`return_error_code`,
//! `return_error_details`: what a backend's error status does to the answer) and
//! `backend/http/client` (`no_redirect`, `send_body_on_redirect`: redirects).

use super::*;

/// `backend/http`: `(return_error_code, return_error_details)`. Neither has an effect on a
/// `no-op` pass-through, which hands the backend's status and body to the client as they are.
pub(super) fn backend_http(c: &mut Checker, node: &Node, path: &str, output: OutputEncoding) -> (bool, Option<String>) {
    let Some(mut obj) = c.object(node, path) else {
        return (false, None);
    };
    if output == OutputEncoding::NoOp {
        c.error(
            node.pos,
            path,
            "has no effect on a \"no-op\" pass-through: the backend's status and body reach the client as they are",
        );
    }
    let code_at = obj.take("return_error_code");
    let code = code_at.as_ref().and_then(|(n, p)| c.boolean(n, p)).unwrap_or(false);
    let details = obj.take("return_error_details").and_then(|(n, p)| {
        let name = c.nonempty(n, &p)?;
        if name.contains(|ch: char| ch.is_control()) {
            c.error(n.pos, &p, "must not hold control characters");
            return None;
        }
        Some(name.to_string())
    });
    if let Some((n, p)) = obj.take("return_error_msg") {
        c.error(
            n.pos,
            &p,
            "return_error_msg is a key of the service's extra_config.router (it sends the backend's body with return_error_code)",
        );
    }
    if code
        && details.is_some()
        && let Some((n, p)) = code_at
    {
        c.warn(
            n.pos,
            &p,
            "ignored: with return_error_details the backend's errors are reported under \"error_<name>\" (as KrakenD does)",
        );
    }
    obj.finish(c);
    (code && details.is_none(), details)
}

/// `backend/http/client`: how the backend's redirects are followed.
pub(super) fn http_client(c: &mut Checker, node: &Node, path: &str) -> Redirects {
    let defaults = Redirects::default();
    let Some(mut obj) = c.object(node, path) else {
        return defaults;
    };
    let follow = obj
        .optional(c, "no_redirect", false, Checker::boolean)
        .map_or(defaults.follow, |no| !no);
    let resend_body = obj
        .optional(c, "send_body_on_redirect", defaults.resend_body, Checker::boolean)
        .unwrap_or(defaults.resend_body);
    if let Some((n, p)) = obj.take("proxy_address") {
        c.error(
            n.pos,
            &p,
            "KrakenD key \"proxy_address\" is not supported by gatelet: backends are called directly",
        );
    }
    obj.finish(c);
    Redirects { follow, resend_body }
}
