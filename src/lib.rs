//! gatelet: a single-threaded API gateway for small Linux boxes that runs KrakenD v3 configs.
//!
//! The request pipeline, one module per stage:
//! - [`runtime`]: one tokio `current_thread` runtime and its `LocalSet`; one thread.
//! - [`listener`]: accept loop, connection cap, per-connection deadlines.
//! - [`http`]: hyper glue, IO adapter, limits, framing checks, error -> status, encoders.
//! - [`router`]: compiled endpoint table, `(method, path)` -> endpoint + params.
//! - [`endpoint`]: runs one endpoint: calls its backends concurrently under one deadline.
//! - [`proxy`]: the upstream HTTP client: pool, connect timeout, body limits.
//! - [`merge`]: decode -> target -> allow/deny -> mapping -> group -> merge.
//! - [`config`]: `krakend.json` -> validated typed [`config::Config`].
//! - [`gateway`]: what is compiled once from the config and shared by every connection.
//! - [`fleet`]: fan-out to the buses and the health of healths; [`dashboard`]: the page that shows it.
//! - [`cli`]: `run`, `check`, `--version`.

pub mod auth;
pub mod backend;
pub mod breaker;
pub mod cache;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod dispatch;
pub mod endpoint;
pub mod fleet;
/// Entry points for `fuzz/` and its regression tests; not gatelet's API.
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod http;
pub mod limiter;
pub mod listener;
pub mod logging;
pub mod merge;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod proxy;
pub mod router;
pub mod runtime;
pub mod sensor;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;

pub use listener::{Options, run};
