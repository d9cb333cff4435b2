//! gatelet: a single-threaded API gateway for small Linux boxes that runs KrakenD v3 configs.
//!
//! The request pipeline, one module per stage:
//! - [`runtime`]: the one `LocalExecutor` driven by `async_io::block_on`.
//! - [`listener`]: accept loop, connection cap, per-connection deadlines.
//! - [`http`]: hyper glue, IO adapter, limits, framing checks, error -> status, encoders.
//! - [`router`]: compiled endpoint table, `(method, path)` -> endpoint + params.
//! - [`endpoint`]: runs one endpoint: calls its backends concurrently under one deadline.
//! - [`proxy`]: the upstream HTTP client: pool, connect timeout, body limits.
//! - [`merge`]: decode -> target -> allow/deny -> mapping -> group -> merge.
//! - [`config`]: `krakend.json` -> validated typed [`config::Config`].
//! - [`cli`]: `run`, `check`, `--version`.

pub mod config;
pub mod merge;
