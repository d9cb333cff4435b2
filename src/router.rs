//! The compiled endpoint table: `(method, path)` -> endpoint index + path parameters.
//!
//! Built once from the validated config; matching splits the request path on `/` and compares
//! segments, no allocation but the parameter list. Literal segments beat `{param}` segments
//! where two endpoints could both match, so `/bus/count` wins over `/bus/{id}`. For a request
//! no route takes, [`Router::fixed_path`] finds where KrakenD's router (gin) would redirect it
//! (trailing slash, `//`, `..`, letter case), and [`clean_path`] is gin's path cleaning. Never
//! parses config, never sees bodies.

use std::borrow::Cow;

use http::Method;

use crate::config::Endpoint;
use crate::config::path::is_param;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

#[derive(Debug)]
struct Route {
    method: Method,
    segments: Vec<Segment>,
    endpoint: usize,
}

/// The result of routing one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Match<'p> {
    /// The endpoint's index and its `{param}` values, in path order.
    Found { endpoint: usize, params: Vec<&'p str> },
    /// Some endpoint has this path, none has this method: the allowed methods, `, `-separated.
    MethodNotAllowed(String),
    /// No endpoint has this path.
    NotFound,
}

/// All endpoints of the config, compiled.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// An endpoint path's segments after the leading `/`.
fn segments(path: &str) -> Vec<Segment> {
    path.split('/')
        .skip(1)
        .map(|s| {
            if is_param(s) {
                Segment::Param
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

impl Router {
    /// Compiles the endpoints (already validated: unique shapes, well-formed params).
    pub fn new(endpoints: &[Endpoint]) -> Router {
        let routes = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| Route {
                method: e.method.clone(),
                segments: segments(&e.path),
                endpoint: i,
            })
            .collect();
        Router { routes }
    }

    /// Routes a request path (without query). `HEAD` goes to the `GET` endpoint of the path
    /// when there is no `HEAD` endpoint (RFC 9110 §9.3.2; KrakenD answers 405), and `Allow`
    /// lists `HEAD` wherever `GET` is.
    pub fn route<'p>(&self, method: &Method, path: &'p str) -> Match<'p> {
        let Some(rest) = path.strip_prefix('/') else {
            return Match::NotFound;
        };
        // The best match on the method itself, else (for HEAD) on GET.
        let mut best: Option<(&Route, u64)> = None;
        let mut best_get: Option<(&Route, u64)> = None;
        let mut allowed: Vec<&Method> = Vec::new();
        for route in &self.routes {
            let Some(score) = matches(&route.segments, rest) else {
                continue;
            };
            if route.method != *method {
                if *method == Method::HEAD && route.method == Method::GET && best_get.is_none_or(|(_, s)| score > s) {
                    best_get = Some((route, score));
                }
                if !allowed.contains(&&route.method) {
                    allowed.push(&route.method);
                }
                if route.method == Method::GET && !allowed.contains(&&Method::HEAD) {
                    allowed.push(&Method::HEAD);
                }
                continue;
            }
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((route, score));
            }
        }
        let best = best.or(best_get);
        match best {
            Some((route, _)) => {
                let params = route
                    .segments
                    .iter()
                    .zip(parts(rest))
                    .filter(|(s, _)| **s == Segment::Param)
                    .map(|(_, v)| v)
                    .collect();
                Match::Found {
                    endpoint: route.endpoint,
                    params,
                }
            }
            None if allowed.is_empty() => Match::NotFound,
            None => Match::MethodNotAllowed(allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")),
        }
    }
}

impl Router {
    /// Whether a route of `method` (or of GET, for HEAD) takes `path` as it is.
    fn takes(&self, method: &Method, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        self.routes
            .iter()
            .any(|r| same_method(&r.method, method) && matches(&r.segments, rest).is_some())
    }

    /// The route of `method` that takes `path` when letter case is ignored (literals beat
    /// parameters, as in [`Router::route`]), as the path it was written with: its literal
    /// segments, the request's parameter values.
    fn takes_ignoring_case(&self, method: &Method, path: &str) -> Option<String> {
        let rest = path.strip_prefix('/')?;
        let mut best: Option<(&Route, u64)> = None;
        for route in self.routes.iter().filter(|r| same_method(&r.method, method)) {
            if let Some(score) = matches_ignoring_case(&route.segments, rest)
                && best.is_none_or(|(_, s)| score > s)
            {
                best = Some((route, score));
            }
        }
        let (route, _) = best?;
        let mut out = String::with_capacity(path.len());
        for (segment, part) in route.segments.iter().zip(rest.split('/')) {
            out.push('/');
            out.push_str(match segment {
                Segment::Literal(l) => l,
                Segment::Param => part,
            });
        }
        Some(out)
    }

    /// Where KrakenD's router (gin) redirects a request that no route of its method takes:
    /// with `trailing_slash` (`disable_redirect_trailing_slash` not set), to the same path
    /// with its trailing slash removed or added, when a route takes that; else, with
    /// `fixed_path` (`disable_redirect_fixed_path` not set), to the path cleaned of `//`, `.`
    /// and `..` and matched without regard to letter case (its trailing slash toggled too when
    /// that is what it takes). Never for `/` or CONNECT, and never to a path a browser would
    /// read as another host (`//host`, `/\host`): the redirect stays on this gateway.
    pub fn fixed_path(&self, method: &Method, path: &str, trailing_slash: bool, fixed_path: bool) -> Option<String> {
        if *method == Method::CONNECT || path == "/" || !path.starts_with('/') {
            return None;
        }
        let found = trailing_slash
            .then(|| toggle_trailing_slash(path))
            .filter(|p| self.takes(method, p))
            .or_else(|| {
                if !fixed_path {
                    return None;
                }
                let clean = clean_path(path);
                self.takes_ignoring_case(method, &clean)
                    .or_else(|| self.takes_ignoring_case(method, &toggle_trailing_slash(&clean)))
            })?;
        let local = found.starts_with('/') && !found.starts_with("//") && !found.starts_with("/\\");
        (local && found != path).then_some(found)
    }
}

/// A route of `route` answers `method`: the same, or GET for HEAD (see [`Router::route`]).
fn same_method(route: &Method, method: &Method) -> bool {
    route == method || (*method == Method::HEAD && *route == Method::GET)
}

/// `/a/` for `/a`, `/a` for `/a/`.
fn toggle_trailing_slash(path: &str) -> String {
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => format!("{path}/"),
    }
}

/// gin's path cleaning (KrakenD's `remove_extra_slash`, and the first step of its fixed-path
/// redirect): empty segments and `.` dropped, `..` removes the segment before it (never above
/// `/`), a trailing slash kept. Borrowed, without allocating, when the path is already clean.
pub fn clean_path(path: &str) -> Cow<'_, str> {
    let dirty = !path.starts_with('/')
        || path.contains("//")
        || path.contains("/./")
        || path.contains("/../")
        || path.ends_with("/.")
        || path.ends_with("/..");
    if !dirty {
        return Cow::Borrowed(path);
    }
    let trailing = path.len() > 1 && (path.ends_with('/') || path.ends_with("/."));
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if kept.is_empty() || trailing {
        out.push('/');
    }
    Cow::Owned(out)
}

/// [`matches`], with literal segments compared without regard to ASCII letter case.
fn matches_ignoring_case(segments: &[Segment], path: &str) -> Option<u64> {
    matches_by(segments, path, str::eq_ignore_ascii_case)
}

/// `Some(score)` when the segments match; the score ranks literal segments above params,
/// leftmost first (a bit per segment, so at most 64 segments are ranked; deeper ones tie).
fn matches(segments: &[Segment], path: &str) -> Option<u64> {
    matches_by(segments, path, |literal, part| literal == part)
}

/// [`matches`] with `same` deciding whether a literal segment equals a path segment.
#[inline]
fn matches_by(segments: &[Segment], path: &str, same: impl Fn(&str, &str) -> bool) -> Option<u64> {
    let mut score = 0u64;
    let mut parts = parts(path);
    for (i, segment) in segments.iter().enumerate() {
        let part = parts.next()?;
        match segment {
            Segment::Literal(l) if same(l, part) => {
                if i < 64 {
                    score |= 1 << (63 - i);
                }
            }
            Segment::Param if !part.is_empty() => {}
            _ => return None,
        }
    }
    parts.next().is_none().then_some(score)
}

/// `path.split('/')`, as every request's routing splits it: a byte scan for `/` costs a
/// fraction of the generic `char` searcher on segments this short.
fn parts(path: &str) -> Parts<'_> {
    Parts(Some(path))
}

/// The iterator of [`parts`]: what is left to split, `None` once the last part is out.
#[derive(Debug, Clone)]
struct Parts<'a>(Option<&'a str>);

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match rest.bytes().position(|b| b == b'/') {
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router {
            routes: routes
                .iter()
                .enumerate()
                .map(|(i, (m, p))| Route {
                    method: m.parse().unwrap(),
                    segments: segments(p),
                    endpoint: i,
                })
                .collect(),
        }
    }

    #[test]
    fn parts_split_like_str_split() {
        for path in ["", "/", "a", "a/", "/a", "a/b", "a//b/", "bus/{id}/x", "é/ü/", "//"] {
            assert_eq!(
                parts(path).collect::<Vec<_>>(),
                path.split('/').collect::<Vec<_>>(),
                "{path:?}"
            );
        }
    }

    #[test]
    fn literal_beats_param_whatever_the_order() {
        let r = router(&[("GET", "/bus/{id}"), ("GET", "/bus/count")]);
        assert_eq!(
            r.route(&Method::GET, "/bus/count"),
            Match::Found {
                endpoint: 1,
                params: vec![]
            }
        );
        assert_eq!(
            r.route(&Method::GET, "/bus/7"),
            Match::Found {
                endpoint: 0,
                params: vec!["7"]
            }
        );
    }

    #[test]
    fn params_come_back_in_path_order() {
        let r = router(&[("GET", "/a/{x}/b/{y}")]);
        assert_eq!(
            r.route(&Method::GET, "/a/1/b/2"),
            Match::Found {
                endpoint: 0,
                params: vec!["1", "2"]
            }
        );
    }

    #[test]
    fn empty_param_trailing_slash_and_extra_segments_do_not_match() {
        let r = router(&[("GET", "/a/{x}"), ("GET", "/")]);
        assert_eq!(r.route(&Method::GET, "/a/"), Match::NotFound);
        assert_eq!(r.route(&Method::GET, "/a/1/2"), Match::NotFound);
        assert_eq!(r.route(&Method::GET, "a/1"), Match::NotFound);
        assert_eq!(
            r.route(&Method::GET, "/"),
            Match::Found {
                endpoint: 1,
                params: vec![]
            }
        );
    }

    #[test]
    fn gin_path_fixes_find_the_route_and_never_leave_the_host() {
        let r = router(&[
            ("GET", "/static"),
            ("GET", "/bus/{id}"),
            ("POST", "/dir/"),
            ("GET", "//evil"),
        ]);
        let fix = |m: &str, p: &str| r.fixed_path(&m.parse().unwrap(), p, true, true);
        assert_eq!(fix("GET", "/static/").as_deref(), Some("/static"));
        assert_eq!(fix("HEAD", "/static/").as_deref(), Some("/static"));
        assert_eq!(fix("GET", "/StAtic").as_deref(), Some("/static"));
        assert_eq!(fix("GET", "/STATIC/").as_deref(), Some("/static"));
        assert_eq!(fix("GET", "/a/..//static").as_deref(), Some("/static"));
        assert_eq!(fix("GET", "/BUS/7/").as_deref(), Some("/bus/7"));
        assert_eq!(fix("POST", "/dir").as_deref(), Some("/dir/"));
        // Only routes of the request's method count.
        assert_eq!(fix("POST", "/static/"), None);
        assert_eq!(fix("GET", "/dir"), None);
        // Never to another host, never for / or CONNECT.
        assert_eq!(fix("GET", "//evil/"), None);
        assert_eq!(fix("GET", "/"), None);
        assert_eq!(fix("CONNECT", "/static/"), None);
        // Each fix on its own.
        assert_eq!(
            r.fixed_path(&Method::GET, "/static/", false, true).as_deref(),
            Some("/static")
        );
        assert_eq!(r.fixed_path(&Method::GET, "/StAtic", true, false), None);
        assert_eq!(r.fixed_path(&Method::GET, "/static/", false, false), None);
    }

    #[test]
    fn clean_path_is_gins() {
        for (dirty, clean) in [
            ("/a/b", "/a/b"),
            ("/a//b", "/a/b"),
            ("//a", "/a"),
            ("/a/./b/", "/a/b/"),
            ("/a/b/..", "/a"),
            ("/a/b/.", "/a/b/"),
            ("/../../a", "/a"),
            ("/..", "/"),
            ("/a/../..//", "/"),
        ] {
            assert_eq!(clean_path(dirty), clean, "{dirty}");
        }
        assert!(matches!(clean_path("/bus/7/"), Cow::Borrowed(_)));
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones() {
        let r = router(&[("GET", "/x"), ("POST", "/x"), ("GET", "/y")]);
        assert_eq!(
            r.route(&Method::DELETE, "/x"),
            Match::MethodNotAllowed("GET, HEAD, POST".into())
        );
        assert_eq!(
            r.route(&Method::POST, "/x"),
            Match::Found {
                endpoint: 1,
                params: vec![]
            }
        );
    }
}
