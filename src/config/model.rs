//! The typed runtime configuration: what the rest of gatelet reads after `config::load` has
//! validated a `krakend.json`. Every value here is already checked and defaulted; nothing in
//! this module parses or validates, and nothing on the request path ever looks at raw JSON.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use super::path::Var;
pub use super::sensors::Decode;
pub use crate::limiter::Strategy;
pub use crate::limiter::bucket::Rate;
pub use crate::merge::{Encoding, FlatOp, Shape};

/// Default `gatelet/ratelimit.max_clients`: clients tracked per limited endpoint.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;

/// KrakenD's default service `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// KrakenD's default `port`.
pub const DEFAULT_PORT: u16 = 8080;
/// KrakenD's default health path (`extra_config.router.health_path`).
pub const DEFAULT_HEALTH_PATH: &str = "/__health";

/// The whole validated service.
#[derive(Debug, Clone)]
pub struct Config {
    /// What `gatelet check` warns about: valid, but probably not what was meant.
    pub warnings: Vec<super::ConfigError>,
    /// `name`, informational only (logged at start-up).
    pub name: Option<String>,
    /// `listen_ip` (KrakenD default `0.0.0.0`).
    pub listen_ip: IpAddr,
    /// `port` (default 8080).
    pub port: u16,
    /// Service `timeout`: default for endpoints (default 2s).
    pub timeout: Duration,
    /// Service `cache_ttl`: default for endpoints (default 0 = no `Cache-Control`).
    pub cache_ttl: Duration,
    /// Service `output_encoding`: default for endpoints (default `json`).
    pub output_encoding: OutputEncoding,
    /// `debug_endpoint`: serve `/__debug/` (also turned on by `run -d`).
    pub debug_endpoint: bool,
    /// `disable_compression`: backends are not asked for gzip (no `Accept-Encoding` is added;
    /// a gzip answer is still inflated).
    pub disable_compression: bool,
    /// `echo_endpoint`: serve `/__echo/`.
    pub echo_endpoint: bool,
    /// `extra_config.router`.
    pub router: RouterOptions,
    /// `endpoints`, in config order.
    pub endpoints: Vec<Endpoint>,
    /// `extra_config."gatelet/sensors"`, in config order.
    pub sensors: Vec<Sensor>,
    /// `extra_config."security/cors"`.
    pub cors: Option<Cors>,
    /// `extra_config."gatelet/api-keys"`.
    pub api_keys: Option<crate::auth::apikey::ApiKeys>,
    /// `extra_config."gatelet/jwt".unsynced_clock`: refuse time-bound tokens (503) while the
    /// clock is known to be unset (default), rather than accept them.
    pub jwt_reject_unsynced_clock: bool,
    /// `extra_config."gatelet/metrics"` (or KrakenD's `telemetry/metrics` without
    /// `endpoint_disabled`): serve `/__stats`.
    pub metrics: bool,
    /// KrakenD's `extra_config."telemetry/logging"`: level (`RUST_LOG` wins when set), prefix,
    /// outputs, format.
    pub logging: crate::logging::Options,
    /// `extra_config."gatelet/access-log"`: one line per request (off by default).
    pub access_log: bool,
    /// `extra_config."gatelet/server".max_connections`: open client connections; beyond it new
    /// ones wait in the kernel's backlog (default 512).
    pub max_connections: usize,
    /// The client connection time limits: `read_header_timeout`, `idle_timeout`,
    /// `read_timeout` (the body), `write_timeout` (a stalled write) and
    /// `gatelet/server.body_idle_timeout`; docs/reliability.md's defaults where absent.
    pub timeouts: crate::net::limits::Timeouts,
    /// `max_shutdown_wait_time`: how long in-flight requests may finish after SIGTERM (default 5s).
    pub shutdown_grace: Duration,
    /// `extra_config."gatelet/fleet"`: the buses a central gatelet queries.
    pub fleet: Option<Fleet>,
    /// `extra_config."gatelet/dashboard"`: the fleet dashboard page (needs `fleet`).
    pub dashboard: Option<Dashboard>,
    /// `extra_config."gatelet/gzip"`: answers of at least `min_size` bytes are gzipped for
    /// clients that accept it (on by default; `None` when `disabled`).
    pub gzip: Option<Gzip>,
    /// `extra_config."gatelet/outbox"`: this bus's durable store-and-forward of events.
    pub outbox: Option<Outbox>,
    /// `extra_config."gatelet/inbox"`: the central's store of delivered events.
    pub inbox: Option<Inbox>,
    /// `tls`: the server config, built and checked at start-up (absent or `disabled`: plain).
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

/// Gzip for answers (`gatelet/gzip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gzip {
    /// `min_size`: smaller answers are sent as they are (default 1024 bytes).
    pub min_size: usize,
    /// `level`: 1 (fastest) to 9 (smallest).
    pub level: u8,
}

/// The fleet (`gatelet/fleet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// `members` (and `members_file`), in order; ids unique.
    pub members: Vec<Member>,
    /// `headers` sent to every member, `${ENV}` already expanded.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `timeout` of a fan-out or health round (default 3s).
    pub timeout: Duration,
    /// `max_in_flight`: members asked at once (default 64).
    pub max_in_flight: usize,
    /// `health_path` of the members (default `/__health`).
    pub health_path: String,
}

/// A bus's outbox (`gatelet/outbox`): events appended to a journal in `dir`, delivered to the
/// central in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox {
    /// `dir`: the journal's directory (created when missing).
    pub dir: std::path::PathBuf,
    /// `bus`: this bus's id, sent with every batch.
    pub bus: String,
    /// `max_bytes` of disk (default 64 MiB).
    pub max_bytes: u64,
    /// `max_events` kept (default 100000).
    pub max_events: u64,
    /// `sync_window`: normal events are synced in groups this often (default 100ms; 0: each).
    pub sync_window: Duration,
    /// `critical`: event `type`s synced one by one and never dropped for room.
    pub critical: Vec<String>,
    /// `deliver`: where the events go (none: kept, not sent).
    pub deliver: Option<Deliver>,
}

/// An outbox's `deliver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// The central's address, from `url`.
    pub host: Host,
    /// The request target of `url` (path and query).
    pub target: String,
    /// Credentials (`api_key` or `bearer`), `${ENV}` already expanded.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `batch`: events per request (default 256).
    pub batch: usize,
    /// `timeout` of one delivery request (default 10s).
    pub timeout: Duration,
    /// `backoff_initial` (default 500ms): the first pause after a failure.
    pub backoff_initial: Duration,
    /// `backoff_max` (default 60s): the longest pause.
    pub backoff_max: Duration,
    /// `gzip`: batches are sent gzip-encoded (default true; turned off for the run when the
    /// central answers 415).
    pub gzip: bool,
}

/// The central's inbox (`gatelet/inbox`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbox {
    /// `dir`: the journal's directory (created when missing).
    pub dir: std::path::PathBuf,
    /// `max_bytes` of disk (default 64 MiB): beyond it the oldest events are dropped.
    pub max_bytes: u64,
    /// `max_events` kept (default 100000).
    pub max_events: u64,
    /// `max_buses`: buses whose high-water mark is kept (default 4096).
    pub max_buses: usize,
}

/// The fleet dashboard (`gatelet/dashboard`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// `path` of the page (default `/__dashboard`).
    pub path: String,
    /// `title` (default: the service's `name`, else "gatelet fleet").
    pub title: Option<String>,
    /// `refresh`: how often the page polls (default 2s).
    pub refresh: Duration,
    /// `position_endpoint`: a GET endpoint of this config answering `{member id: {lat, lon}}`.
    pub position_endpoint: Option<String>,
    /// `events_endpoint`: a GET endpoint of this config reading the `gatelet/inbox`; the page
    /// shows the latest events per bus, critical first.
    pub events_endpoint: Option<String>,
}

/// One bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `id`, e.g. `bus-17`.
    pub id: String,
    /// `host`, resolved at start-up.
    pub host: Host,
}

/// KrakenD's `security/cors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// `allow_origins` (`"*"` = any).
    pub allow_origins: Vec<String>,
    /// `allow_methods` (default GET, HEAD, POST).
    pub allow_methods: Vec<http::Method>,
    /// `allow_headers`, lower-case (default origin, authorization, content-type).
    pub allow_headers: Vec<String>,
    /// `expose_headers` (default content-length, content-type).
    pub expose_headers: Vec<String>,
    /// `max_age` of a preflight (default 12h).
    pub max_age: Duration,
    /// `allow_credentials` (default false).
    pub allow_credentials: bool,
}

/// One sensor of `extra_config."gatelet/sensors"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// The key it is defined under; backends name it.
    pub name: String,
    /// `decode` (with `scale` / `checksum`).
    pub decode: Decode,
    /// `max_age`: readings older than this are `stale`.
    pub max_age: Option<Duration>,
    /// `key`: keep the latest reading per value of this field.
    pub key: Option<String>,
    /// `max_frame` (bytes, default 4096): longer frames are dropped and counted.
    pub max_frame: usize,
    /// `events.capacity`: keep every frame in a ring of this size instead of only the latest.
    pub events: Option<usize>,
    /// `events.forward` (`Some(critical)` with `events.critical`): every frame also goes to
    /// the outbox.
    pub forward: Option<bool>,
    /// Where the bytes come from.
    pub source: SensorSource,
}

/// A sensor's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SensorSource {
    /// `"file": {"path", "mode": "read", "interval"}`: the whole file is one frame, re-read
    /// every `interval`.
    FileRead {
        path: std::path::PathBuf,
        interval: Duration,
    },
    /// `"file": {"path", "mode": "follow", "interval"}`: appended lines, like `tail -F`, checked
    /// every `interval`; follows the name across rotation, restarts on truncation.
    FileFollow {
        path: std::path::PathBuf,
        interval: Duration,
    },
    /// `"tcp": {"address", "send_on_connect"}` or `"unix": {"path", "send_on_connect"}`: a client
    /// stream of lines, reconnected with jittered exponential backoff.
    /// `"listen": {"address", "max_pushers"}`: devices connect and push lines.
    Listen { address: ListenAddr, max_pushers: usize },
    Stream {
        target: StreamTarget,
        send_on_connect: Option<String>,
        reconnect_min: Duration,
        reconnect_max: Duration,
    },
}

/// A serial line's settings (`"serial"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialSettings {
    /// `baud` (default 9600).
    pub baud: u32,
    /// `data_bits` 5 to 8 (default 8).
    pub data_bits: u8,
    /// `parity`: `none` (default), `even` or `odd`.
    pub parity: Parity,
    /// `stop_bits` 1 (default) or 2.
    pub stop_bits: u8,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// Where a `listen` sensor accepts pushers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `"127.0.0.1:7000"`.
    Tcp(std::net::SocketAddr),
    /// `"unix:/run/gatelet/in.sock"`.
    Unix(std::path::PathBuf),
}

/// Where a stream sensor connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamTarget {
    /// A TCP address, resolved at start-up.
    Tcp(std::net::SocketAddr),
    /// A Unix stream socket path.
    Unix(std::path::PathBuf),
    /// A serial device, opened raw (`O_NOCTTY`, non-blocking) and reopened by path after a
    /// hang-up.
    Serial(std::path::PathBuf, SerialSettings),
}

/// A backend that reads a sensor instead of calling a host (`"gatelet/sensor"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorBackend {
    /// Index into `Config::sensors`.
    pub sensor: usize,
    /// `reject_stale`: a stale reading fails the backend instead of being served.
    pub reject_stale: bool,
    /// `write`: the request body is written to the sensor's device instead (POST/PUT, the
    /// endpoint's only backend).
    pub write: bool,
}

/// `extra_config.router` keys that gatelet honours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterOptions {
    /// `health_path` (default `/__health`).
    pub health_path: String,
    /// `disable_health` (default false).
    pub disable_health: bool,
    /// `return_error_msg`: put backend error details in error bodies (default false).
    pub return_error_msg: bool,
    /// `trusted_proxies`: peers whose `X-Forwarded-For` is believed (default none).
    pub trusted_proxies: Vec<crate::net::Cidr>,
    /// Not `disable_redirect_trailing_slash`: `/a/` is redirected to `/a` (and back) when only
    /// that is an endpoint (default true).
    pub redirect_trailing_slash: bool,
    /// Not `disable_redirect_fixed_path`: a path with `//`, `.`, `..` or other letter case is
    /// redirected to the endpoint it then matches (default true).
    pub redirect_fixed_path: bool,
    /// Not `disable_path_decoding`: a path parameter still percent-encoded once decoded
    /// (`%252F`) is refused with 400 (default true).
    pub reject_encoded_params: bool,
    /// `remove_extra_slash`: the path is cleaned of `//`, `.` and `..` before routing, and
    /// served without a redirect (default false).
    pub remove_extra_slash: bool,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            health_path: DEFAULT_HEALTH_PATH.to_string(),
            disable_health: false,
            return_error_msg: false,
            trusted_proxies: Vec::new(),
            redirect_trailing_slash: true,
            redirect_fixed_path: true,
            reject_encoded_params: true,
            remove_extra_slash: false,
        }
    }
}

/// How an endpoint renders its merged answer (`output_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputEncoding {
    /// `json`: the merged object.
    Json,
    /// `json-collection`: the merged object's `collection` array (or `[]`).
    JsonCollection,
    /// `string`: the merged object's `content` string, as `text/plain`.
    String,
    /// `no-op`: the single backend's status, headers and body, unchanged.
    NoOp,
    /// `xml`: the merged object as XML, in KrakenD's shape.
    Xml,
    /// `negotiate`: JSON or XML, as the client's `Accept` asks.
    Negotiate,
}

/// Which request headers or query parameters are forwarded (`input_headers`,
/// `input_query_strings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forward {
    /// `["*"]`: everything (hop-by-hop headers are never forwarded).
    All,
    /// An explicit list. Header names are stored lower-case; query names as written.
    Only(Vec<String>),
}

/// One `endpoints[i]`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `endpoint`: the path, with `{param}` segments, e.g. `/bus/{id}/status`.
    pub path: String,
    /// `method` (default GET).
    pub method: http::Method,
    /// `backend`, in config order; at least one.
    pub backends: Vec<Backend>,
    /// `output_encoding` (default: the service's).
    pub output_encoding: OutputEncoding,
    /// `timeout`: hard deadline for the whole answer (default: the service's).
    pub timeout: Duration,
    /// `cache_ttl` (default: the service's).
    pub cache_ttl: Duration,
    /// `input_headers` (default: only `content-type`).
    pub input_headers: Forward,
    /// `input_query_strings` (default: none).
    pub input_query_strings: Forward,
    /// `concurrent_calls` (default 1): identical calls raced per backend, first success wins.
    pub concurrent_calls: u32,
    /// `extra_config."qos/ratelimit/router"` (and `"gatelet/ratelimit"`).
    pub rate_limit: Option<RateLimit>,
    /// `extra_config."gatelet/api-keys".roles`: an API key is required, with one of these roles
    /// (any key when empty).
    pub api_key_roles: Option<Vec<String>>,
    /// `extra_config."auth/validator"`: a valid JWT is required.
    pub jwt: Option<crate::auth::jwt::Validator>,
    /// `extra_config.proxy.sequential`: the backends are called one after another, and later
    /// `url_pattern`s read earlier answers (`{respN_field}`).
    pub sequential: bool,
    /// `extra_config.proxy.static`: data added to the answer when its strategy matches.
    pub static_data: Option<StaticData>,
    /// `extra_config.proxy.flatmap_filter`: operations on the merged answer (two or more
    /// backends); empty = none.
    pub flatmap: Vec<FlatOp>,
    /// The placeholders of its backends' `url_pattern`s that are filled per request
    /// (`{JWT.claim}`, `{respN_field}`), each once; a backend's template refers to them by index.
    pub vars: Vec<Var>,
    /// `extra_config."validation/json-schema"`: request bodies must match this schema.
    #[cfg(feature = "json-schema")]
    pub body_schema: Option<std::sync::Arc<crate::schema::BodySchema>>,
}

/// An endpoint's `proxy.static`.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticData {
    /// `strategy` (default `always`).
    pub strategy: StaticStrategy,
    /// `data`: its keys win over the backends'.
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// When `proxy.static` data is added (KrakenD's strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticStrategy {
    /// `always`.
    Always,
    /// `success`: no backend failed.
    Success,
    /// `complete`: no backend failed and the answer is complete.
    Complete,
    /// `errored`: some backend failed (or every one).
    Errored,
    /// `incomplete`: the answer is not complete (a failure, a fan-out member, a backend not
    /// reached), or there is none.
    Incomplete,
}

impl StaticStrategy {
    /// Whether data is added for an answer where some backend `failed` and which is `complete`.
    pub fn matches(self, failed: bool, complete: bool) -> bool {
        match self {
            StaticStrategy::Always => true,
            StaticStrategy::Success => !failed,
            StaticStrategy::Complete => !failed && complete,
            StaticStrategy::Errored => failed,
            StaticStrategy::Incomplete => !complete,
        }
    }
}

/// An endpoint's rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// `max_rate` / `capacity` / `every`: one bucket for all clients (503 when empty).
    pub endpoint: Option<Rate>,
    /// `client_max_rate` / `client_capacity` / `every` with `strategy` and `key` (429).
    pub client: Option<(Rate, Strategy)>,
    /// `gatelet/ratelimit.max_clients`: least recently seen clients beyond it are forgotten.
    pub max_clients: usize,
}

/// One upstream host of a backend, resolved at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// As it goes in the `Host` header: `name:port` (port omitted when 80).
    pub authority: String,
    /// The address connected to (first result of resolution at start-up).
    pub addr: SocketAddr,
}

/// One `endpoints[i].backend[j]`.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `host` (default: the service's `host`); round-robin; at least one.
    pub hosts: Vec<Host>,
    /// `url_pattern`: starts with `/`; its `{param}`s all exist in the endpoint path.
    pub url_pattern: String,
    /// `method` (default: the endpoint's).
    pub method: http::Method,
    /// `encoding` (default `json`; `no-op` when the endpoint is `no-op`).
    pub encoding: Encoding,
    /// `target`, `allow`, `deny`, `mapping`, `group`, `is_collection`.
    pub shape: Shape,
    /// Backend-level `input_headers`: narrows the endpoint's list when set.
    pub input_headers: Option<Forward>,
    /// Backend-level `input_query_strings`: narrows the endpoint's list when set.
    pub input_query_strings: Option<Forward>,
    /// `extra_config."qos/ratelimit/proxy"`: calls beyond it fail without reaching the host.
    pub rate_limit: Option<Rate>,
    /// `extra_config."qos/circuit-breaker"`, with `log_status_change`.
    pub breaker: Option<CircuitBreaker>,
    /// `extra_config."qos/http-cache"`: keep successful GET answers for their `max-age`.
    pub cache: Option<crate::cache::Bounds>,
    /// `extra_config."gatelet/retry"`: `(attempts, backoff)` for idempotent GETs.
    pub retry: Option<Retry>,
    /// `extra_config."gatelet/sensor"`: read this sensor; `hosts` is then empty.
    pub sensor: Option<SensorBackend>,
    /// `extra_config."gatelet/fleet"`: call every fleet member; `hosts` is then empty.
    pub fleet: bool,
    /// `extra_config."gatelet/outbox"` or `"gatelet/inbox"`: the endpoint appends to (or
    /// reads) a journal; `hosts` is then empty.
    pub store: Option<Store>,
    /// `extra_config."backend/http".return_error_code`: when no backend of the endpoint
    /// answered, the client gets this backend's error status (and, with the router's
    /// `return_error_msg`, its body).
    pub return_error_code: bool,
    /// `extra_config."backend/http".return_error_details`: an error status is reported in the
    /// answer under `error_<name>` instead of failing the backend.
    pub return_error_details: Option<String>,
    /// `extra_config."backend/http/client"`: how its redirects are followed.
    pub redirects: Redirects,
}

/// A backend that is a journal of this gatelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// `gatelet/outbox` (POST): the body is one event.
    Outbox,
    /// `gatelet/inbox`: POST takes a bus's batch, GET pages through what is stored.
    Inbox,
}

/// A backend's redirects (`backend/http/client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirects {
    /// Followed within the backend's hosts (default), or answers like any other
    /// (`no_redirect: true`).
    pub follow: bool,
    /// `send_body_on_redirect` (default true): a 307 or 308 re-sends the request body.
    pub resend_body: bool,
}

impl Default for Redirects {
    fn default() -> Self {
        Redirects {
            follow: true,
            resend_body: true,
        }
    }
}

/// A backend's `qos/circuit-breaker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// `interval`, `timeout`, `max_errors`.
    pub settings: crate::breaker::Settings,
    /// `log_status_change`: state changes are logged at warn (else debug).
    pub log_status_change: bool,
    /// `name`, how logs, `/__health` and `/__stats` call it (default: `METHOD path -> url`).
    pub name: Option<String>,
}

/// A backend's `gatelet/retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// `attempts`: calls in all, the first included.
    pub attempts: u32,
    /// `backoff`: the longest pause before a retry (full jitter below it).
    pub backoff: Duration,
}
