//! The HTTP limits of docs/reliability.md, one named constant each with its reason.
//! Everything that bounds memory or time per connection lives here so it can be read at once.

use std::time::Duration;

/// Request line + headers. nginx/HAProxy range; a JWT is ~1 KiB. Over it: 431 + close.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// hyper's read buffer cap; equal to the head cap so one connection never buffers more.
pub const MAX_READ_BUF: usize = MAX_HEAD_BYTES;
/// Request target length. RFC 9112 §3 asks servers to support at least 8000. Over it: 414.
pub const MAX_TARGET_BYTES: usize = 8000;
/// Request method. The longest registered one (`UPDATEREDIRECTREF`) has 17 bytes; a longer
/// token is a bad request line (400 + close), not a head too large (431).
pub const MAX_METHOD_BYTES: usize = 32;
/// Header count. Envoy/hyper use 100; a bus API needs few. Over it: 431 + close.
pub const MAX_HEADERS: usize = 64;
/// Request body. Bounded memory on a 512 MiB Pi. Over it: 413 + close.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The whole head must arrive within this of its first byte (an idle timer alone never fires
/// against a client sending one byte a second). Also the wait for a new connection's first head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive idle time between requests; 4G clients reconnect cheaply. Then: silent close.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request body must make progress this often. Else: 408 + close.
pub const BODY_INACTIVITY_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must be complete within this. Else: 408 + close.
pub const BODY_TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// A response write may stall this long (slow-read attack). Then: close.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection's time limits: the constants above unless the config says otherwise
/// (KrakenD's service keys `read_header_timeout`, `idle_timeout`, `read_timeout`,
/// `write_timeout`, and `gatelet/server.body_idle_timeout`). Copied into each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// [`HEAD_TIMEOUT`] (`read_header_timeout`).
    pub head: Duration,
    /// [`IDLE_TIMEOUT`] (`idle_timeout`).
    pub idle: Duration,
    /// [`BODY_INACTIVITY_TIMEOUT`] (`gatelet/server.body_idle_timeout`).
    pub body_idle: Duration,
    /// [`BODY_TOTAL_TIMEOUT`] (`read_timeout`).
    pub body_total: Duration,
    /// [`WRITE_STALL_TIMEOUT`] (`write_timeout`).
    pub write_stall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            head: HEAD_TIMEOUT,
            idle: IDLE_TIMEOUT,
            body_idle: BODY_INACTIVITY_TIMEOUT,
            body_total: BODY_TOTAL_TIMEOUT,
            write_stall: WRITE_STALL_TIMEOUT,
        }
    }
}

/// The longest any of [`Timeouts`] may be configured: a connection slot is a Pi's scarce
/// resource, and an hour is already far past any sane client.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Open client connections when the config sets none: the fd and RSS budget of a Pi.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The most `gatelet/server.max_connections` may say: each connection holds two descriptors
/// (one kept for the lingering close), and 65 536 is far beyond a Pi's RSS budget anyway.
pub const MAX_MAX_CONNECTIONS: usize = 65_536;
/// A backend answer buffered for merging, on the wire and again once a gzip body is inflated.
/// Bigger ones fail that backend (use `no-op` to stream).
pub const MAX_BACKEND_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Open upstream connections per backend host; excess calls wait within the endpoint deadline.
/// A naive proxy with one upstream per client peaked at ~60 MB RSS with 1000 clients.
pub const MAX_UPSTREAM_CONNECTIONS: usize = 16;
/// An idle upstream connection older than this is not reused (backends close idle ones too;
/// Go's default is 90 s, Python's http.server closes at once, nginx 75 s).
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// TCP connect to a backend; also bounded by the endpoint deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// hyper's read buffer per upstream connection (response head + body chunks in flight).
pub const MAX_UPSTREAM_READ_BUF: usize = 32 * 1024;
/// Lingering close: how long to keep reading (and discarding) after deciding to close, so the
/// last response is not destroyed by a RST (nginx `lingering_time` is 30 s; we need far less).
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// Lingering close: the most bytes discarded before closing anyway.
pub const LINGER_MAX_BYTES: usize = 256 * 1024;
