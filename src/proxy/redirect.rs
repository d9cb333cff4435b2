//! Backend redirects, followed as Go's HTTP client (KrakenD's) follows them: at most
//! [`MAX_REQUESTS`] requests in a chain; 301, 302 and 303 become a GET without a body (a HEAD
//! stays a HEAD), 307 and 308 keep the method and the body; `Referer` names the previous URL;
//! credentials (`Authorization`, `Cookie`) are dropped when the chain leaves the first host's
//! domain. A 3xx without `Location` is an answer like any other.
//!
//! Unlike Go's client, a redirect may only lead to one of the backend's own hosts (the pools
//! built at start-up: nothing on the request path resolves names or opens connections to
//! places the config does not name); `https`, other schemes, user info and `Location` values
//! that do not resolve to a request target are refused with an error saying why. [`resolve`]
//! is a pure function, bounded by the length of the value, and never panics.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::pool::{Lease, Pool};
use super::{UpstreamError, exchange};
use crate::net::limits;

/// Requests in one chain, the first included: Go stops at the 10th redirect answer.
pub const MAX_REQUESTS: usize = 10;

/// How much of a redirect answer's body is read so its connection can carry the next request;
/// a longer one closes the connection instead.
const DRAIN_BYTES: usize = 2048;

/// The hosts a backend's redirects may lead to.
pub trait RedirectHosts {
    /// The pool of `host:port` (`host` as written in `Location`, IPv6 in brackets), if that is
    /// one of the backend's hosts.
    fn pool_for(&self, host: &str, port: u16) -> Option<&Rc<Pool>>;
}

/// How a call follows redirects.
#[derive(Clone, Copy)]
pub struct Follow<'a> {
    /// Where they may lead.
    pub hosts: &'a dyn RedirectHosts,
    /// A 307 or 308 re-sends the request body (else such a redirect of a request with a body
    /// is the answer, as with KrakenD's `send_body_on_redirect: false`).
    pub resend_body: bool,
}

/// Where a redirect leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host as written (lower-case), IPv6 in brackets.
    pub host: String,
    /// The port (80 when absent).
    pub port: u16,
    /// The `Host` header for it: the authority as written.
    pub authority: String,
    /// The request target, origin form (path and query).
    pub path: String,
}

/// Whether `status` is a redirect Go's client follows.
pub fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Sends the request `build` makes to `pool` and, with `follow`, follows the redirects it is
/// answered with.
pub(super) async fn exchange_following(
    pool: &Rc<Pool>,
    build: &dyn Fn() -> Request<Full<Bytes>>,
    follow: Option<Follow<'_>>,
    deadline: Instant,
) -> Result<(Response<Incoming>, Lease), UpstreamError> {
    let (resp, lease) = exchange(pool, build, deadline).await?;
    match follow {
        Some(follow) if is_redirect(resp.status()) && resp.headers().contains_key(header::LOCATION) => {
            // Boxed: the rare path's state stays out of every call's future.
            Box::pin(chain(resp, lease, build, follow, deadline)).await
        }
        _ => Ok((resp, lease)),
    }
}

/// Follows a chain that starts with the answer `resp` to the request `build` makes.
async fn chain(
    mut resp: Response<Incoming>,
    mut lease: Lease,
    build: &dyn Fn() -> Request<Full<Bytes>>,
    follow: Follow<'_>,
    deadline: Instant,
) -> Result<(Response<Incoming>, Lease), UpstreamError> {
    let (first, body) = build().into_parts();
    let mut body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut method = first.method;
    let original = first.headers;
    let mut authority = original
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let first_host = host_of(&authority).to_ascii_lowercase();
    let mut path = first.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut requests = 1;
    let mut dropped_body = false;
    loop {
        let status = resp.status();
        let location = match resp.headers().get(header::LOCATION) {
            Some(l) if is_redirect(status) && !l.is_empty() => l,
            _ => return Ok((resp, lease)),
        };
        let keeps_method = matches!(status.as_u16(), 307 | 308);
        if keeps_method && !body.is_empty() && !follow.resend_body {
            return Ok((resp, lease));
        }
        if requests >= MAX_REQUESTS {
            return Err(UpstreamError::Redirect(format!(
                "stopped after {MAX_REQUESTS} redirects"
            )));
        }
        let next = resolve(location.as_bytes(), &authority, &path).map_err(|why| {
            UpstreamError::Redirect(format!(
                "Location {:?} refused: {why}",
                String::from_utf8_lossy(location.as_bytes())
            ))
        })?;
        let Some(pool) = follow.hosts.pool_for(&next.host, next.port) else {
            return Err(UpstreamError::Redirect(format!(
                "to {} refused: not one of the backend's hosts",
                next.authority
            )));
        };
        let uri: http::Uri = next
            .path
            .parse()
            .map_err(|_| UpstreamError::Redirect(format!("Location target {:?} is not a valid URI", next.path)))?;
        let host = HeaderValue::from_str(&next.authority)
            .map_err(|_| UpstreamError::Redirect(format!("Location host {:?} is not valid", next.authority)))?;
        let referer = HeaderValue::from_str(&format!("http://{authority}{path}")).ok();
        drain(resp, lease, deadline).await;
        if !keeps_method {
            if method != Method::HEAD {
                method = Method::GET;
            }
            body = Bytes::new();
            dropped_body = true;
        }
        let mut headers = original.clone();
        if dropped_body {
            for name in [
                header::CONTENT_LENGTH,
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
                header::CONTENT_LANGUAGE,
            ] {
                headers.remove(name);
            }
        }
        headers.insert(header::HOST, host);
        if !original.contains_key(header::REFERER)
            && let Some(r) = referer
        {
            headers.insert(header::REFERER, r);
        }
        if !same_or_subdomain(&next.host, &first_host) {
            drop_credentials(&mut headers);
        }
        let build_next = || {
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri.clone();
            *req.headers_mut() = headers.clone();
            req
        };
        (resp, lease) = exchange(pool, &build_next, deadline).await?;
        requests += 1;
        authority = next.authority;
        path = next.path;
    }
}

/// Reads what is left of a redirect answer so its connection can be reused: a short body is
/// read and the connection kept, a long or slow one closes it.
async fn drain(resp: Response<Incoming>, lease: Lease, deadline: Instant) {
    let body = Limited::new(resp.into_body(), DRAIN_BYTES).collect();
    if let Some(Ok(_)) = crate::runtime::until(deadline, body).await {
        lease.release();
    }
}

/// Go's rule for credentials on a redirect: kept while the new host is the first host or one
/// of its subdomains (ports aside).
fn same_or_subdomain(host: &str, first: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == first
        || host
            .strip_suffix(first)
            .is_some_and(|prefix| prefix.ends_with('.') && !first.starts_with('['))
}

fn drop_credentials(headers: &mut HeaderMap) {
    for name in [header::AUTHORIZATION, header::WWW_AUTHENTICATE, header::COOKIE] {
        headers.remove(name);
    }
    headers.remove("cookie2");
}

/// The host part of an authority (`name`, `1.2.3.4`, `[::1]`).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |end| &authority[..=end]);
    }
    authority.rsplit_once(':').map_or(authority, |(host, _)| host)
}

/// Where `location` leads from the request to `base_authority` with target `base_path`
/// (RFC 3986 §5.2, for `http` only). Fails, saying why, on anything gatelet does not follow.
pub fn resolve(location: &[u8], base_authority: &str, base_path: &str) -> Result<Target, String> {
    if location.len() > limits::MAX_TARGET_BYTES {
        return Err(format!("longer than {} bytes", limits::MAX_TARGET_BYTES));
    }
    let text = escape(location);
    // The fragment is the client's, never sent.
    let text = text.split('#').next().unwrap_or_default();
    let (authority, rest) = match scheme_of(text) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => match rest.strip_prefix("//") {
            Some(after) => split_authority(after),
            None => return Err("an http URL without a host".into()),
        },
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err("https: gatelet calls backends over plain HTTP".into());
        }
        Some((scheme, _)) => return Err(format!("scheme {scheme:?} is not http")),
        None => match text.strip_prefix("//") {
            Some(after) => split_authority(after),
            None => (None, text),
        },
    };
    let (ref_path, ref_query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (base_only, base_query) = match base_path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base_path, None),
    };
    let (path, query) = match authority {
        Some(_) => (
            if ref_path.is_empty() {
                "/".to_string()
            } else {
                ref_path.to_string()
            },
            ref_query,
        ),
        None if ref_path.starts_with('/') => (ref_path.to_string(), ref_query),
        None if ref_path.is_empty() => (base_only.to_string(), ref_query.or(base_query)),
        None => {
            let dir = base_only.rfind('/').map_or("/", |i| &base_only[..=i]);
            let dir = if dir.starts_with('/') { dir } else { "/" };
            ([dir, ref_path].concat(), ref_query)
        }
    };
    let mut path = remove_dot_segments(&path);
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    let authority = match authority {
        Some(a) => a,
        None => base_authority,
    };
    if authority.contains('@') {
        return Err("user info in a redirect is not followed".into());
    }
    let parsed: http::uri::Authority = authority.parse().map_err(|_| format!("{authority:?} is not a host"))?;
    if parsed.host().is_empty() {
        return Err("no host".into());
    }
    // After the host: nothing, a bare ':' (the default port, as Go reads it) or ':' and a port.
    let host = parsed.host().to_ascii_lowercase();
    let (port, authority) = match parsed.as_str().get(host.len()..).unwrap_or_default() {
        "" | ":" => (80, host.clone()),
        tail => match tail.strip_prefix(':').filter(|p| p.bytes().all(|b| b.is_ascii_digit())) {
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => (port, format!("{host}:{port}")),
                _ => return Err(format!("{authority:?} has no valid port")),
            },
            None => return Err(format!("{authority:?} has no valid port")),
        },
    };
    Ok(Target {
        host,
        port,
        authority,
        path,
    })
}

/// `Location` bytes as text, with what a request target may not hold (spaces, controls,
/// non-ASCII bytes, and `"`, `<`, `>`, `\`, `^`, backtick, `{`, `|`, `}`) percent-encoded, as
/// Go's URL type writes them.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

/// `scheme:rest` when `text` starts with a scheme (a letter, then letters, digits, `+-.`, up
/// to a `:` that comes before any `/`, `?` or `#`).
fn scheme_of(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next()?.is_ascii_alphabetic();
    let ok = first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some((scheme, rest))
}

/// `authority` and the rest of a reference after its `//`.
fn split_authority(after: &str) -> (Option<&str>, &str) {
    let end = after.find(['/', '?']).unwrap_or(after.len());
    (Some(&after[..end]), &after[end..])
}

/// RFC 3986 §5.2.4 on a path that starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut segments = path.split('/').skip(1).peekable();
    let mut trailing = false;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => trailing = last,
            ".." => {
                kept.pop();
                trailing = last;
            }
            s => {
                kept.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(location: &str) -> Result<(String, u16, String), String> {
        resolve(location.as_bytes(), "127.0.0.1:8001", "/a/b/c?x=1").map(|t| (t.authority, t.port, t.path))
    }

    #[test]
    fn locations_resolve_like_rfc_3986() {
        let here = |p: &str| Ok(("127.0.0.1:8001".to_string(), 8001, p.to_string()));
        assert_eq!(to("/new"), here("/new"));
        assert_eq!(to("/new?y=2#frag"), here("/new?y=2"));
        assert_eq!(to("d"), here("/a/b/d"));
        assert_eq!(to("./d/"), here("/a/b/d/"));
        assert_eq!(to("../d"), here("/a/d"));
        assert_eq!(to("../../../../d"), here("/d"));
        assert_eq!(to("?y=2"), here("/a/b/c?y=2"));
        assert_eq!(to("#f"), here("/a/b/c?x=1"));
        assert_eq!(to("/a/./b/../c/."), here("/a/c/"));
        assert_eq!(to("/a b"), here("/a%20b"));
        assert_eq!(to("/caf\u{e9}"), here("/caf%C3%A9"));
        assert_eq!(
            to("http://LocalHost:9/p"),
            Ok(("localhost:9".to_string(), 9, "/p".to_string()))
        );
        assert_eq!(to("//h.example"), Ok(("h.example".to_string(), 80, "/".to_string())));
        assert_eq!(
            to("//H.example:/x"),
            Ok(("h.example".to_string(), 80, "/x".to_string()))
        );
        assert_eq!(
            to("HTTP://[::1]:8080?q"),
            Ok(("[::1]:8080".to_string(), 8080, "/?q".to_string()))
        );
    }

    #[test]
    fn unfollowable_locations_say_why() {
        for bad in [
            "https://127.0.0.1:8001/x",
            "ftp://h/x",
            "mailto:a@b",
            "http:/nohost",
            "http://user:pw@127.0.0.1:8001/",
            "http://h:99999/",
            "http://h:port/",
            "http://h:+80/",
            "http://h:0/",
            "http:///x",
            "//",
        ] {
            assert!(to(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("/{}", "a".repeat(limits::MAX_TARGET_BYTES));
        assert!(to(&long).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    b"/:?#@[].%ab19 \xff."[(x % 16) as usize]
                })
                .collect();
            if let Ok(t) = resolve(&bytes, "h:1", "/p") {
                assert!(t.path.starts_with('/'), "{t:?}");
                assert!(t.path.parse::<http::uri::PathAndQuery>().is_ok(), "{t:?}");
            }
        }
    }

    #[test]
    fn credentials_stay_within_the_first_hosts_domain() {
        assert!(same_or_subdomain("api.example", "api.example"));
        assert!(same_or_subdomain("v2.api.example", "api.example"));
        assert!(!same_or_subdomain("evilapi.example", "api.example"));
        assert!(!same_or_subdomain("127.0.0.2", "127.0.0.1"));
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("h:80"), "h");
        assert_eq!(host_of("h"), "h");
    }
}
