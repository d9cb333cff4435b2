//! Step 8 of the journey: responses from data. An endpoint's merged answer per
//! `output_encoding` (JSON, XML or either as `Accept` asks), error bodies with their headers
//! (JSON, but KrakenD's plain-text 404 and 405 and its redirects, and a backend's own error
//! status and body under `return_error_code`), `RateLimit-*`, sensor writes and passed-through
//! answers, and gzip for clients that accept it. Pure functions from data to `Response`.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::error::Error;
use crate::config::{Endpoint, Gzip, OutputEncoding};
use crate::endpoint::Answer;
use crate::http::body::Body;
use crate::limiter::Quota;
use crate::limiter::bucket::ceil_secs;

const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const XML: HeaderValue = HeaderValue::from_static("application/xml; charset=utf-8");
const TEXT_XML: HeaderValue = HeaderValue::from_static("text/xml; charset=utf-8");
/// `X-Gatelet-Completed`: whether every backend answered in time.
pub const COMPLETED: http::HeaderName = http::HeaderName::from_static("x-gatelet-completed");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const FALSE: HeaderValue = HeaderValue::from_static("false");

/// The `X-Gatelet-Completed` value.
pub fn completed(complete: bool) -> HeaderValue {
    if complete { TRUE } else { FALSE }
}

fn response(status: StatusCode, content_type: HeaderValue, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, content_type);
    r
}

/// A JSON document with `status`.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    response(status, JSON, body)
}

/// Renders the merged data per `encoding` (never `NoOp`, which is streamed); `negotiate`
/// looks at the request's `Accept`.
fn render(encoding: OutputEncoding, data: &Map<String, Value>, request: &HeaderMap) -> (HeaderValue, Vec<u8>) {
    let to_vec = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    match encoding {
        OutputEncoding::Json | OutputEncoding::NoOp => (JSON, serde_json::to_vec(data).unwrap_or_default()),
        OutputEncoding::Xml => (XML, super::xml::document(data)),
        OutputEncoding::Negotiate => match negotiate(request) {
            Some(xml) => (xml, super::xml::document(data)),
            None => (JSON, serde_json::to_vec(data).unwrap_or_default()),
        },
        // lura renders the `collection` key, or an empty array when there is none.
        OutputEncoding::JsonCollection => match data.get("collection") {
            Some(c @ Value::Array(_)) => (JSON, to_vec(c)),
            _ => (JSON, b"[]".to_vec()),
        },
        // lura renders the `content` key when it is a string, else nothing.
        OutputEncoding::String => match data.get("content") {
            Some(Value::String(s)) => (TEXT, s.as_bytes().to_vec()),
            _ => (TEXT, Vec::new()),
        },
    }
}

/// An endpoint's 200 answer to a request with headers `request`.
pub fn answer(endpoint: &Endpoint, answer: &Answer, request: &HeaderMap) -> Response<Body> {
    let (content_type, body) = render(endpoint.output_encoding, &answer.data, request);
    let mut r = response(StatusCode::OK, content_type, body);
    let headers = r.headers_mut();
    headers.insert(COMPLETED, completed(answer.complete));
    cache_control(headers, endpoint, answer.complete);
    if endpoint.output_encoding == OutputEncoding::Negotiate {
        headers.append(header::VARY, HeaderValue::from_static("Accept"));
    }
    r
}

/// What `negotiate` renders for a request's `Accept`: XML (with the type the client named) or,
/// by default, JSON (`None`). RFC 9110's rules: the most specific range that matches a type
/// gives its `q`; the highest `q` wins, then the range written first (KrakenD's router only
/// looks at the order), then JSON. No `Accept`, or nothing acceptable, is JSON, as in KrakenD.
fn negotiate(request: &HeaderMap) -> Option<HeaderValue> {
    const OFFERS: [(&str, &str); 3] = [("application", "json"), ("application", "xml"), ("text", "xml")];
    // For each offer: (q in thousandths, position of the range, specificity of the range).
    let mut best: [Option<(u16, usize, u8)>; 3] = [None; 3];
    let ranges = request
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|r| !r.trim().is_empty());
    for (position, range) in ranges.enumerate() {
        let mut params = range.split(';');
        let media = params.next().unwrap_or_default().trim();
        let (kind, sub) = media.split_once('/').unwrap_or((media, ""));
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, v)| {
                v.trim()
                    .parse::<f32>()
                    .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
            });
        for (slot, (offer_kind, offer_sub)) in best.iter_mut().zip(OFFERS) {
            let specificity = match (kind.eq_ignore_ascii_case(offer_kind), sub) {
                (true, s) if s.eq_ignore_ascii_case(offer_sub) => 3,
                (true, "*") => 2,
                _ if kind == "*" && sub == "*" => 1,
                _ => continue,
            };
            if slot.is_none_or(|(_, _, s)| s < specificity) {
                *slot = Some((q, position, specificity));
            }
        }
    }
    let mut chosen = 0;
    let mut chosen_rank = None;
    for (i, slot) in best.iter().enumerate() {
        if let Some((q, position, _)) = *slot
            && q > 0
            && chosen_rank.is_none_or(|(cq, cp)| q > cq || (q == cq && position < cp))
        {
            chosen = i;
            chosen_rank = Some((q, position));
        }
    }
    match chosen {
        1 => Some(XML),
        2 => Some(TEXT_XML),
        _ => None,
    }
}

/// `Cache-Control: public, max-age=N` on complete answers of endpoints with a `cache_ttl`.
pub fn cache_control(headers: &mut HeaderMap, endpoint: &Endpoint, complete: bool) {
    let ttl = endpoint.cache_ttl.as_secs();
    if complete && ttl > 0 {
        let mut buf = itoa::Buffer::new();
        if let Ok(v) = HeaderValue::from_str(&["public, max-age=", buf.format(ttl)].concat()) {
            headers.insert(header::CACHE_CONTROL, v);
        }
    }
}

/// The answer for `error`: a JSON `{"error": ...}` document, except KrakenD's (gin's) plain
/// `404 page not found` and `405 method not allowed` and its redirects.
pub fn error(error: &Error, return_error_msg: bool) -> Response<Body> {
    if let Error::Endpoint(crate::endpoint::EndpointError::Status(_, reply)) = error {
        // A backend's status forwarded by `return_error_code`, answered as KrakenD answers it:
        // no body, or the backend's body and `Content-Type` under `return_error_msg`.
        let mut r = Response::new(Body::full(match return_error_msg {
            true => reply.body.clone(),
            false => Bytes::new(),
        }));
        *r.status_mut() = error.status();
        if return_error_msg && let Some(ct) = &reply.content_type {
            r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        r.headers_mut().insert(COMPLETED, FALSE);
        return r;
    }
    let mut r = match error {
        Error::NotFound => response(error.status(), TEXT, &b"404 page not found"[..]),
        Error::MethodNotAllowed(_) => response(error.status(), TEXT, &b"405 method not allowed"[..]),
        Error::Redirect { location, get } => redirect(error.status(), location, *get),
        _ => {
            let body = json!({ "error": error.message(return_error_msg) });
            json(error.status(), serde_json::to_vec(&body).unwrap_or_default())
        }
    };
    decorate_error(error, &mut r);
    r
}

/// Go's `http.Redirect`, which KrakenD's router answers with: `Location`, and for a GET a
/// small HTML body linking to it.
fn redirect(status: StatusCode, location: &HeaderValue, get: bool) -> Response<Body> {
    let mut r = match get {
        true => {
            let mut html = String::with_capacity(location.len() + 40);
            html.push_str("<a href=\"");
            for ch in String::from_utf8_lossy(location.as_bytes()).chars() {
                match ch {
                    '&' => html.push_str("&amp;"),
                    '<' => html.push_str("&lt;"),
                    '>' => html.push_str("&gt;"),
                    '"' => html.push_str("&#34;"),
                    '\'' => html.push_str("&#39;"),
                    c => html.push(c),
                }
            }
            html.push_str("\">Moved Permanently</a>.\n\n");
            response(status, HTML, html)
        }
        false => {
            let mut r = Response::new(Body::full(Bytes::new()));
            *r.status_mut() = status;
            r
        }
    };
    r.headers_mut().insert(header::LOCATION, location.clone());
    r
}

/// The headers every error answer carries: `X-Gatelet-Completed: false`, and per error
/// `Allow`, `Retry-After`, `WWW-Authenticate`, `RateLimit-*`, `Connection: close`.
fn decorate_error(error: &Error, r: &mut Response<Body>) {
    let headers = r.headers_mut();
    headers.insert(COMPLETED, FALSE);
    if let Error::MethodNotAllowed(allow) = error
        && let Ok(v) = HeaderValue::from_str(allow)
    {
        headers.insert(header::ALLOW, v);
    }
    if let Some(secs) = error.retry_after_secs() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Error::Unauthenticated(_) = error {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="gatelet", error="invalid_token""#),
        );
    }
    if let Some((quota, _)) = error.rate_limit() {
        rate_limit_headers(headers, &quota);
    }
    if error.closes() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (whole seconds until the
/// bucket is full again, rounded up), as in the IETF RateLimit header fields draft.
pub fn rate_limit_headers(headers: &mut HeaderMap, quota: &Quota) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(quota.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(quota.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(ceil_secs(quota.reset)));
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// A sensor write's 202 answer: how many bytes went to the device.
pub fn written(bytes: usize) -> Response<Body> {
    let mut resp = json(StatusCode::ACCEPTED, format!(r#"{{"written":{bytes}}}"#));
    resp.headers_mut().insert(COMPLETED, completed(true));
    resp
}

/// Gzip for `response` when it is a complete body of at least `settings.min_size` bytes: such
/// an answer depends on the request's `Accept-Encoding` (`Vary`), and is compressed when the
/// request accepts gzip and that makes it smaller. Streamed answers (`no-op`) keep the
/// backend's own encoding.
pub fn gzip(response: &mut Response<Body>, request: &HeaderMap, settings: &Gzip) {
    let Some(len) = response.body().full_bytes().map(Bytes::len) else {
        return;
    };
    if len < settings.min_size.max(1) || response.headers().contains_key(header::CONTENT_ENCODING) {
        return;
    }
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let accepted = request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .map(HeaderValue::as_bytes);
    if !crate::compress::accepts_gzip(accepted) {
        return;
    }
    let Some(packed) = response
        .body()
        .full_bytes()
        .map(|body| crate::compress::gzip(body, settings.level))
    else {
        return;
    };
    if packed.len() < len {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        *response.body_mut() = Body::full(packed);
    }
}

/// A `no-op` backend's answer as the client's, marked complete when it is a success.
pub fn passed_through(mut resp: Response<crate::proxy::Streaming>) -> Response<Body> {
    let ok = resp.status().is_success();
    resp.headers_mut().insert(COMPLETED, completed(ok));
    resp.map(Body::stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_and_string_renderings_follow_lura() {
        let data: Map<String, Value> = serde_json::from_str(r#"{"collection":[1,2],"content":"hi"}"#).unwrap();
        let none = HeaderMap::new();
        assert_eq!(render(OutputEncoding::JsonCollection, &data, &none).1, b"[1,2]");
        assert_eq!(render(OutputEncoding::String, &data, &none).1, b"hi");
        assert_eq!(render(OutputEncoding::JsonCollection, &Map::new(), &none).1, b"[]");
        assert_eq!(render(OutputEncoding::String, &Map::new(), &none).1, b"");
    }

    #[test]
    fn negotiation_follows_q_then_order_then_json() {
        let pick = |accept: &[&str]| {
            let mut h = HeaderMap::new();
            for a in accept {
                h.append(header::ACCEPT, HeaderValue::from_str(a).unwrap());
            }
            negotiate(&h).map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        };
        let xml = Some("application/xml".to_string());
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&["*/*"]), None);
        assert_eq!(pick(&["application/json"]), None);
        assert_eq!(pick(&["application/xml"]), xml);
        assert_eq!(pick(&["text/xml"]), Some("text/xml".to_string()));
        assert_eq!(pick(&["application/xml, application/json"]), xml);
        assert_eq!(pick(&["application/json, application/xml"]), None);
        assert_eq!(pick(&["application/xml;q=0.5, application/json"]), None);
        assert_eq!(pick(&["application/*;q=0.2", "application/xml;q=0.3"]), xml);
        assert_eq!(pick(&["*/*;q=0.1, application/xml"]), xml);
        assert_eq!(pick(&["application/xml;q=0, */*"]), None);
        assert_eq!(pick(&["application/json;q=0, */*"]), xml);
        // A browser.
        assert_eq!(
            pick(&["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"]),
            xml
        );
        assert_eq!(pick(&["image/png"]), None);
        assert_eq!(pick(&["text/plain"]), None);
    }
}
