//! The fleet dashboard (`extra_config."gatelet/dashboard"`): one self-contained HTML page
//! (`dashboard/page.html`: markup, CSS and plain JavaScript, embedded in the binary) that polls
//! `/__fleet/health` and the configured position endpoint and draws the fleet for a wall screen.
//!
//! This module owns rendering the page once at start-up (title and settings filled in, the
//! Content-Security-Policy hashes of its one script and one style computed) and answering it
//! with its headers. It never loads anything from outside (no fonts, tiles, CDNs: buses and
//! offices may have no Internet) and never reads config or files on the request path.

use self::base64::encode as base64;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use ring::digest::{SHA256, digest};

use crate::config::Dashboard;
use crate::http::body::Body;

/// The page's template: `{{title}}`, `{{refresh_ms}}`, `{{positions}}`, `{{events}}` are filled
/// in once.
pub const TEMPLATE: &str = include_str!("dashboard/page.html");

/// The most the rendered page may weigh: a wall screen on a bus depot's link, and a phone.
/// `tests/dashboard.rs` holds the page to it.
pub const MAX_PAGE_BYTES: usize = 32 * 1024;

/// The page, rendered once, with its response headers.
pub struct Page {
    /// Where it is served.
    pub path: String,
    body: Bytes,
    csp: HeaderValue,
    etag: HeaderValue,
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The contents of every `<tag>...</tag>` in `page` (the template's own, no attributes).
fn blocks<'p>(page: &'p str, tag: &str) -> Vec<&'p str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        out.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    out
}

/// `'sha256-...'` sources for CSP, one per block.
fn hashes(blocks: &[&str]) -> String {
    let sources: Vec<String> = blocks
        .iter()
        .map(|b| format!("'sha256-{}'", base64(digest(&SHA256, b.as_bytes()).as_ref())))
        .collect();
    sources.join(" ")
}

impl Page {
    /// Renders the page for `d`; `name` is the service's `name` (the default title).
    pub fn render(d: &Dashboard, name: Option<&str>) -> Page {
        let title = d.title.as_deref().or(name).unwrap_or("gatelet fleet");
        let html = TEMPLATE
            .replace("{{title}}", &escape(title))
            .replace("{{refresh_ms}}", &d.refresh.as_millis().to_string())
            .replace("{{positions}}", &escape(d.position_endpoint.as_deref().unwrap_or("")))
            .replace("{{events}}", &escape(d.events_endpoint.as_deref().unwrap_or("")));
        // Only the page's own inline script and style may run; it talks to this gatelet only.
        // `img-src data:` is for the empty favicon, which spares a 404 on every load.
        let csp = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hashes(&blocks(&html, "script")),
            hashes(&blocks(&html, "style"))
        );
        let digest = digest(&SHA256, html.as_bytes());
        let etag = format!("\"{}\"", base64(&digest.as_ref()[..12]));
        Page {
            path: d.path.clone(),
            body: Bytes::from(html),
            // Both are static text and base64: always valid header values.
            csp: HeaderValue::try_from(csp).expect("CSP is ASCII"),
            etag: HeaderValue::try_from(etag).expect("ETag is ASCII"),
        }
    }

    /// The answer to `GET path`: the page, or 304 when the client's copy is current. Browsers
    /// revalidate every load (`no-cache`), so a reloaded config shows at once.
    pub fn respond(&self, request: &HeaderMap) -> Response<Body> {
        let current = request.get(header::IF_NONE_MATCH).is_some_and(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii() == self.etag.as_bytes())
        });
        let mut r = if current {
            let mut r = Response::new(Body::full(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            Response::new(Body::full(self.body.clone()))
        };
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        r
    }
}

/// base64 (RFC 4648): the standard alphabet with padding (§4), as CSP hash sources want it,
/// and the URL-safe one without (§5, as JWTs want it: `fuzzing` signs tokens with it).
pub mod base64 {
    /// RFC 4648 §4.
    pub const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    /// RFC 4648 §5.
    pub const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// Encodes `bytes` in the standard alphabet, padded.
    pub fn encode(bytes: &[u8]) -> String {
        encode_with(bytes, STANDARD, true)
    }

    /// Encodes `bytes` in `alphabet`, padded with `=` when `pad`.
    pub fn encode_with(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(alphabet[(n >> (18 - 6 * i)) as usize & 63]));
                } else if pad {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        let url = base64::encode_with(&[0xfb, 0xff], base64::URL_SAFE, false);
        assert_eq!(url, "-_8");
    }

    #[test]
    fn titles_are_escaped_and_the_csp_hashes_the_inline_blocks() {
        let d = Dashboard {
            path: "/__dashboard".into(),
            title: Some("<b>Depot \"North\"</b>".into()),
            refresh: std::time::Duration::from_secs(2),
            position_endpoint: None,
            events_endpoint: None,
        };
        let page = Page::render(&d, None);
        let html = std::str::from_utf8(&page.body).unwrap();
        assert!(html.contains("&lt;b&gt;Depot &quot;North&quot;&lt;/b&gt;"));
        assert!(!html.contains("{{"), "every placeholder is filled");
        let script = blocks(html, "script");
        assert_eq!(script.len(), 1);
        let expected = format!("'sha256-{}'", base64(digest(&SHA256, script[0].as_bytes()).as_ref()));
        assert!(page.csp.to_str().unwrap().contains(&expected));
    }
}
