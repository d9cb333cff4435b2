//! Building the request one backend receives from the client's: the `url_pattern` template
//! with its parameters and per-request values (JWT claims, earlier answers; percent-encoded),
//! the forwarded query parameters and headers (never the hop-by-hop ones, nor the client's own
//! copy of a header set from claims), `X-Forwarded-*` and `User-Agent`, and the body for
//! methods that carry one. Pure functions, compiled templates; no I/O.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request};
use http_body_util::Full;

use super::{CallError, Inbound};
use crate::config::path::{self, Placeholder};
use crate::config::{Forward, Var};

/// `User-Agent` sent upstream when the client's is not forwarded, and `X-Forwarded-Via` when
/// it is.
pub const USER_AGENT_STR: &str = concat!("gatelet/", env!("CARGO_PKG_VERSION"));
const USER_AGENT: HeaderValue = HeaderValue::from_static(USER_AGENT_STR);
/// Names built at compile time (a `&str` name is parsed on every insert).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_VIA: HeaderName = HeaderName::from_static("x-forwarded-via");
const ZERO: HeaderValue = HeaderValue::from_static("0");

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the message, so
/// they are never passed on, in either direction.
pub const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `name` is one of [`HOP_BY_HOP`].
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_by_hop_index(name).is_some()
}

/// Where `name` is in [`HOP_BY_HOP`]. Matched on the text (the compiler switches on its
/// length first): comparing `HeaderName`s one by one costs several times more per header.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "te" => 3,
        "trailer" => 4,
        "transfer-encoding" => 5,
        "upgrade" => 6,
        _ => return None,
    })
}

/// Removes the [`HOP_BY_HOP`] headers: one pass over the names there are, then a removal
/// (which hashes its name) only for those present; an answer usually carries one at most.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present |= 1 << i;
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Client headers never forwarded whatever `input_headers` says: the hop-by-hop ones, the
/// proxy's credentials, the ones gatelet sets itself (framing, `Host`, `X-Forwarded-*`), and
/// names with an underscore: some backends (CGI, PHP, some Python and Ruby servers) fold `_`
/// into `-`, so `Content_Length` or `Transfer_Encoding` would become framing headers there.
pub fn never_forwarded(name: &HeaderName) -> bool {
    is_hop_by_hop(name)
        || name.as_str().contains('_')
        || matches!(
            name.as_str(),
            "proxy-authorization" | "host" | "content-length" | "x-forwarded-for" | "x-forwarded-host"
        )
}

/// One piece of a backend `url_pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Copied as is.
    Literal(String),
    /// The value of the endpoint's `{param}` at this index.
    Param(usize),
    /// A value filled per request (`{JWT.claim}`, `{respN_field}`): the endpoint's
    /// [`Var`](crate::config::Var) at this index, percent-encoded.
    Var(usize),
}

/// Splits a `url_pattern` on `{param}` references to the endpoint's parameters and on its
/// per-request placeholders, numbered as in the endpoint's `vars`. Validation guarantees every
/// reference names one of them.
pub fn compile_url(pattern: &str, params: &[&str], vars: &[Var]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + len];
        let piece = match path::placeholder(name, params) {
            Placeholder::Param(p) => params.iter().position(|n| *n == p).map(Piece::Param),
            Placeholder::Var(v) => vars.iter().position(|w| *w == v).map(Piece::Var),
            _ => None,
        };
        let Some(piece) = piece else { break };
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_string()));
        }
        pieces.push(piece);
        rest = &rest[open + len + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_string()));
    }
    pieces
}

/// Which client headers a backend receives, parsed once: names are `HeaderName`s, and the
/// never-forwarded ones are already left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderForward {
    /// Every client header but the never-forwarded ones.
    All,
    /// These.
    Only(Vec<HeaderName>),
}

impl HeaderForward {
    /// Compiles a `Forward` list of (already validated, lower-case) header names.
    pub fn compile(forward: &Forward) -> HeaderForward {
        match forward {
            Forward::All => HeaderForward::All,
            Forward::Only(names) => HeaderForward::Only(
                names
                    .iter()
                    .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                    .filter(|n| !never_forwarded(n))
                    .collect(),
            ),
        }
    }
}

/// The effective list when a backend narrows its endpoint's list.
pub fn narrow(endpoint: &Forward, backend: Option<&Forward>) -> Forward {
    match (endpoint, backend) {
        (e, None) | (e, Some(Forward::All)) => e.clone(),
        (Forward::All, Some(b)) => b.clone(),
        (Forward::Only(e), Some(Forward::Only(b))) => {
            Forward::Only(e.iter().filter(|n| b.contains(n)).cloned().collect())
        }
    }
}

/// What a backend forwards, compiled: its URL template and its header and query lists.
#[derive(Debug)]
pub struct Template {
    /// `url_pattern` split into literals and parameter slots.
    pub url: Vec<Piece>,
    /// The headers this backend receives: the endpoint's list narrowed by the backend's.
    pub headers: HeaderForward,
    /// The query parameters this backend receives, likewise.
    pub query: Forward,
    /// The headers `propagate_claims` sets: the client's own are never forwarded.
    pub claim_headers: Vec<HeaderName>,
}

/// Whether a per-request value may go into a URL: something, and not a path step of its own.
pub fn usable_in_url(value: &str) -> bool {
    !matches!(value, "" | "." | "..")
}

/// Appends `value` percent-encoded: everything but RFC 3986's unreserved characters, so that
/// it stays one path segment or one query value (`/`, `?`, `&`, `=`, `#`, `%` all encoded).
fn push_escaped(uri: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            uri.push(b as char);
        } else {
            uri.push('%');
            uri.push(HEX[usize::from(b >> 4)] as char);
            uri.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

impl Template {
    /// The request target: `url_pattern` with parameters, plus the forwarded query.
    pub fn target(&self, inbound: &Inbound<'_>) -> String {
        let mut uri = String::with_capacity(64);
        for piece in &self.url {
            match piece {
                Piece::Literal(l) => uri.push_str(l),
                Piece::Param(i) => {
                    // A client path segment is a valid path, but hyper's URI parser (like RFC
                    // 3986) refuses a raw '"' in a query, where `url_pattern` may put a
                    // parameter: sent raw there, the request would fall back to "/". Encoded
                    // everywhere, for one rule.
                    let value = inbound.params.get(*i).copied().unwrap_or_default();
                    if value.contains('"') {
                        uri.push_str(&value.replace('"', "%22"));
                    } else {
                        uri.push_str(value);
                    }
                }
                Piece::Var(i) => {
                    if let Some(Some(value)) = inbound.vars.borrow().get(*i) {
                        push_escaped(&mut uri, value);
                    }
                }
            }
        }
        let Some(query) = inbound.query.filter(|q| !q.is_empty()) else {
            return uri;
        };
        let mut sep = if uri.contains('?') { '&' } else { '?' };
        for pair in query.split('&') {
            let name = pair.split('=').next().unwrap_or_default();
            if self.forwards_query(name) && !pair.is_empty() {
                uri.push(sep);
                uri.push_str(pair);
                sep = '&';
            }
        }
        uri
    }

    /// Whether the query parameter `name` is forwarded.
    pub fn forwards_query(&self, name: &str) -> bool {
        match &self.query {
            Forward::All => true,
            Forward::Only(names) => names.iter().any(|n| n == name),
        }
    }

    /// [`Template::target`] as the URI the request is sent to, parsed once per call (a retry
    /// reuses it). The pattern is validated at start-up and parameters are escaped path
    /// segments, so this should always parse; if it does not, the call fails rather than go
    /// somewhere else.
    pub fn uri(&self, inbound: &Inbound<'_>) -> Result<http::Uri, CallError> {
        if let Some(i) = self.url.iter().find_map(|p| match p {
            Piece::Var(i) if !matches!(inbound.vars.borrow().get(*i), Some(Some(_))) => Some(*i),
            _ => None,
        }) {
            return Err(CallError::MissingValue(format!(
                "url_pattern placeholder {i} has no value"
            )));
        }
        let uri = self.target(inbound);
        uri.parse().map_err(|_| CallError::BadTarget(uri))
    }

    /// Whether the request carries the client's credentials upstream: a forwarded
    /// `Authorization` or `Cookie`, or headers propagated from JWT claims. A shared cache must
    /// not hand such an answer to another client (RFC 9111 §3.5).
    pub fn sends_credentials(&self, inbound: &Inbound<'_>) -> bool {
        let forwarded = |name: &HeaderName| {
            inbound.headers.contains_key(name)
                && match &self.headers {
                    HeaderForward::All => true,
                    HeaderForward::Only(names) => names.contains(name),
                }
        };
        !inbound.propagated.is_empty() || forwarded(&header::AUTHORIZATION) || forwarded(&header::COOKIE)
    }

    /// The headers the backend at `host` receives.
    pub fn headers(&self, host: &HeaderValue, inbound: &Inbound<'_>) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(8);
        match &self.headers {
            HeaderForward::All => {
                for (name, value) in inbound.headers {
                    if never_forwarded(name) {
                        if name.as_str().contains('_') {
                            log::debug!("header {name} not forwarded: a name with '_'");
                        }
                        continue;
                    }
                    out.append(name, value.clone());
                }
            }
            HeaderForward::Only(names) => {
                for name in names {
                    for value in inbound.headers.get_all(name) {
                        out.append(name.clone(), value.clone());
                    }
                }
            }
        }
        for name in &self.claim_headers {
            out.remove(name);
        }
        out.insert(header::HOST, host.clone());
        // KrakenD's rule: the client's User-Agent when it is forwarded, with the gateway named
        // in X-Forwarded-Via; the gateway's own otherwise.
        if out.contains_key(header::USER_AGENT) {
            out.insert(X_FORWARDED_VIA, USER_AGENT);
        } else {
            out.insert(header::USER_AGENT, USER_AGENT);
        }
        out.insert(X_FORWARDED_FOR, inbound.forwarded_for.clone());
        if let Some(h) = inbound.headers.get(header::HOST) {
            out.insert(X_FORWARDED_HOST, h.clone());
        }
        for (name, value) in &inbound.propagated {
            out.insert(name.clone(), value.clone());
        }
        out
    }
}

/// The request itself; built again for a retry. `headers` is built anew for each call
/// (cheaper than keeping a map to clone for the rare retry). An empty POST, PUT or PATCH says
/// `Content-Length: 0`, as Go's client (and RFC 9110 §8.6) has it: hyper sends no length for
/// an empty body, and some servers wait for one or answer 411.
pub fn request(method: &Method, uri: &http::Uri, mut headers: HeaderMap, body: &Bytes) -> Request<Full<Bytes>> {
    let body = if matches!(*method, Method::GET | Method::HEAD) {
        Bytes::new()
    } else {
        body.clone()
    };
    if body.is_empty() && matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        headers.insert(header::CONTENT_LENGTH, ZERO);
    }
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers;
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(url: Vec<Piece>, query: Forward, headers: Forward) -> Template {
        Template {
            url,
            headers: HeaderForward::compile(&headers),
            query,
            claim_headers: Vec::new(),
        }
    }

    fn inbound<'r>(params: &'r [&'r str], query: Option<&'r str>, headers: &'r HeaderMap) -> Inbound<'r> {
        Inbound {
            params,
            query,
            headers,
            body: Bytes::new(),
            forwarded_for: HeaderValue::from_static("192.0.2.7"),
            now: 0,
            propagated: Vec::new(),
            vars: Default::default(),
            subject: None,
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed_with_all_their_values() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-a"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("proxy-connection", HeaderValue::from_static("close"));
        remove_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-a"]);
        assert_eq!(h.len(), 2);
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        for name in [header::CONTENT_TYPE, header::TRAILER, HeaderName::from_static("x-te")] {
            assert_eq!(is_hop_by_hop(&name), HOP_BY_HOP.contains(&name), "{name}");
        }
        let mut none = HeaderMap::new();
        remove_hop_by_hop(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn url_patterns_split_on_known_params_only() {
        assert_eq!(
            compile_url("/v1/{b}/x?id={a}", &["a", "b"], &[]),
            vec![
                Piece::Literal("/v1/".into()),
                Piece::Param(1),
                Piece::Literal("/x?id=".into()),
                Piece::Param(0)
            ]
        );
        assert_eq!(compile_url("/plain", &[], &[]), vec![Piece::Literal("/plain".into())]);
        let vars = [
            Var::Jwt("sub".into()),
            Var::Resp {
                backend: 0,
                path: vec!["a".into(), "b".into()],
            },
        ];
        assert_eq!(
            compile_url("/d/{resp0_a.b}/{JWT.sub}/{id}", &["id"], &vars),
            vec![
                Piece::Literal("/d/".into()),
                Piece::Var(1),
                Piece::Literal("/".into()),
                Piece::Var(0),
                Piece::Literal("/".into()),
                Piece::Param(0)
            ]
        );
    }

    #[test]
    fn backend_lists_narrow_the_endpoint_list() {
        let only = |v: &[&str]| Forward::Only(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(narrow(&Forward::All, None), Forward::All);
        assert_eq!(narrow(&Forward::All, Some(&only(&["a"]))), only(&["a"]));
        assert_eq!(narrow(&only(&["a", "b"]), Some(&only(&["b", "c"]))), only(&["b"]));
        assert_eq!(narrow(&only(&["a"]), Some(&Forward::All)), only(&["a"]));
    }

    #[test]
    fn target_fills_params_and_keeps_only_listed_query_names() {
        let h = HeaderMap::new();
        let b = template(
            vec![
                Piece::Literal("/v/".into()),
                Piece::Param(0),
                Piece::Literal("?x=1".into()),
            ],
            Forward::Only(vec!["a".into(), "c".into()]),
            Forward::All,
        );
        assert_eq!(b.target(&inbound(&["7"], Some("a=1&b=2&c&ab=3"), &h)), "/v/7?x=1&a=1&c");
        let all = template(vec![Piece::Literal("/p".into())], Forward::All, Forward::All);
        assert_eq!(all.target(&inbound(&[], Some("b=2&&z"), &h)), "/p?b=2&z");
        assert_eq!(all.target(&inbound(&[], None, &h)), "/p");
    }

    #[test]
    fn per_request_values_are_percent_encoded_and_missing_ones_refuse_the_call() {
        let h = HeaderMap::new();
        let b = template(
            vec![
                Piece::Literal("/u/".into()),
                Piece::Var(0),
                Piece::Literal("?q=".into()),
                Piece::Var(1),
            ],
            Forward::All,
            Forward::All,
        );
        let inb = inbound(&[], None, &h);
        *inb.vars.borrow_mut() = vec![Some("../a b/é".into()), Some("x&admin=1#".into())];
        assert_eq!(b.target(&inb), "/u/..%2Fa%20b%2F%C3%A9?q=x%26admin%3D1%23");
        assert!(b.uri(&inb).is_ok());
        inb.vars.borrow_mut()[1] = None;
        assert!(matches!(b.uri(&inb), Err(CallError::MissingValue(_))));
        assert!(!usable_in_url("..") && !usable_in_url("") && usable_in_url("..."));
    }

    #[test]
    fn headers_forward_only_listed_names_and_never_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-secret", HeaderValue::from_static("s"));
        h.insert("connection", HeaderValue::from_static("close"));
        h.insert("host", HeaderValue::from_static("bus7.example"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
        h.insert("content_length", HeaderValue::from_static("5"));
        h.insert("transfer_encoding", HeaderValue::from_static("chunked"));
        let b = template(
            vec![],
            Forward::All,
            Forward::Only(vec!["content-type".into(), "connection".into()]),
        );
        let out = b.headers(&HeaderValue::from_static("127.0.0.1:9"), &inbound(&[], None, &h));
        assert_eq!(out.get("content-type").unwrap(), "application/json");
        assert!(out.get("x-secret").is_none());
        assert!(out.get("connection").is_none());
        assert_eq!(out.get("host").unwrap(), "127.0.0.1:9");
        assert_eq!(out.get("x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(out.get("x-forwarded-host").unwrap(), "bus7.example");
        assert_eq!(out.get("user-agent").unwrap(), USER_AGENT);
        assert!(out.get("x-forwarded-via").is_none());
        let all = template(vec![], Forward::All, Forward::All);
        let out = all.headers(&HeaderValue::from_static("b:1"), &inbound(&[], None, &h));
        assert_eq!(out.get("x-secret").unwrap(), "s");
        assert!(out.get("connection").is_none());
        assert!(out.get("content_length").is_none() && out.get("transfer_encoding").is_none());
        let listed = template(vec![], Forward::All, Forward::Only(vec!["content_length".into()]));
        let out = listed.headers(&HeaderValue::from_static("b:1"), &inbound(&[], None, &h));
        assert!(out.get("content_length").is_none(), "not even when listed");
    }
}
