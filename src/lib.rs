//! gatelet: a single-threaded API gateway for small Linux boxes that runs KrakenD v3 configs.
//!
//! Start-up: `krakend.json` -> [`config`] (JSON tree, checked, then resolved: DNS and key files)
//! -> `gateway` (routes, backends, pools, limiters and sensor tasks compiled once) ->
//! `listener` (accept loop, connection cap, reloads on SIGHUP).
//!
//! A request: `listener` -> `http` (hyper's connection over [`net`]'s socket adapter and
//! deadlines) -> `dispatch`, whose steps are the request's journey: preflight, read,
//! built-ins, route, authenticate (`auth`), limit ([`limiter`]), call (`endpoint`, which calls
//! each `backend`: `proxy` for upstream hosts, `sensor` readings, the fleet fan-out), render.
//!
//! Leaves that everything else may use: `runtime` (one tokio `current_thread` runtime and its
//! `LocalSet`: one thread), `time`, [`net`], [`merge`], `breaker`, `cache`, [`limiter`], `auth`,
//! [`compress`] (gzip for answers), `schema` (request bodies against a JSON schema).
//! No module depends on one above it: `tests/module_graph.rs` fails on a cycle, and
//! `docs/ARCHITECTURE.md` draws the graph.
//!
//! The public surface is what the binary (`cli`), the tests and the benchmarks need.

mod auth;
mod backend;
mod breaker;
pub mod cache;
pub mod cli;
pub mod compress;
pub mod config;
pub mod dashboard;
mod dispatch;
mod endpoint;
mod fleet;
/// Entry points for `fuzz/` and its regression tests; not gatelet's API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod http;
pub mod journal;
pub mod limiter;
mod listener;
mod logging;
pub mod merge;
pub mod metrics;
pub mod net;
mod notify;
mod outbox;
mod proxy;
mod router;
mod runtime;
#[cfg(feature = "json-schema")]
mod schema;
mod sensor;
mod time;
#[cfg(feature = "tls")]
mod tls;

pub use listener::{Options, run};
