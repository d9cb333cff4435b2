//! The compiled endpoint table: `(method, path)` -> endpoint index + path parameters.
//!
//! Built once from the validated config; matching splits the request path on `/` and compares
//! segments, no allocation but the parameter list. Literal segments beat `{param}` segments
//! where two endpoints could both match, so `/bus/count` wins over `/bus/{id}`. Never parses
//! config, never sees bodies.

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
                    .zip(rest.split('/'))
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

/// `Some(score)` when the segments match; the score ranks literal segments above params,
/// leftmost first (a bit per segment, so at most 64 segments are ranked; deeper ones tie).
fn matches(segments: &[Segment], path: &str) -> Option<u64> {
    let mut score = 0u64;
    let mut parts = path.split('/');
    for (i, segment) in segments.iter().enumerate() {
        let part = parts.next()?;
        match segment {
            Segment::Literal(l) if l == part => {
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
