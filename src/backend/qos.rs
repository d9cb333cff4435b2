//! The quality-of-service wrappers around one backend call, in the order they apply:
//! `qos/ratelimit/proxy` ([`admit`]), `qos/circuit-breaker` ([`Circuit`], [`Probe`]),
//! `qos/http-cache` ([`cached`]) and `gatelet/retry` ([`with_retry`]).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::CallError;
use crate::breaker::{self, Breaker};
use crate::cache::Cache;
use crate::limiter::Shared;
use crate::proxy::{Reply, UpstreamError};
use crate::time::{Clock, Nanos};

/// The backend's `qos/ratelimit/proxy` bucket, if any, has a token for this call.
pub fn admit(limit: Option<&Shared>, now: Nanos) -> Result<(), CallError> {
    match limit {
        Some(limit) if limit.try_acquire(now).is_err() => Err(CallError::RateLimited),
        _ => Ok(()),
    }
}

/// One circuit breaker with what its logs need.
#[derive(Debug)]
pub struct Circuit {
    /// The breaker's state.
    pub state: RefCell<Breaker>,
    /// `log_status_change`: state changes are logged at warn (else debug).
    pub log: bool,
    /// How logs and `/__health` name it.
    pub name: String,
}

impl Circuit {
    /// A closed circuit at `now`.
    pub fn new(settings: breaker::Settings, log: bool, name: String, now: Nanos) -> Circuit {
        Circuit {
            state: RefCell::new(Breaker::new(settings, now)),
            log,
            name,
        }
    }

    /// Asks for a call now: the probe that reports its outcome, or `CircuitOpen`.
    pub fn probe(&self, clock: Clock) -> Result<Probe<'_>, CallError> {
        self.state
            .borrow_mut()
            .allow(clock.now())
            .map_err(|_| CallError::CircuitOpen)?;
        Ok(Probe {
            circuit: self,
            clock,
            succeeded: Cell::new(false),
        })
    }

    /// Its state at `now`.
    pub fn state(&self, now: Nanos) -> breaker::State {
        self.state.borrow_mut().state(now)
    }
}

/// One call let through by a [`Circuit`]. Reports the outcome when dropped: a success only if
/// marked so, so an error, a timeout or a call cancelled by the endpoint deadline all count as
/// failures.
pub struct Probe<'c> {
    circuit: &'c Circuit,
    clock: Clock,
    succeeded: Cell<bool>,
}

impl Probe<'_> {
    /// The call succeeded.
    pub fn succeeded(&self) {
        self.succeeded.set(true);
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        let c = self.circuit;
        let changed = c.state.borrow_mut().record(self.clock.now(), self.succeeded.get());
        if let Some(state) = changed {
            if c.log {
                log::warn!("circuit breaker {}: now {state:?}", c.name);
            } else {
                log::debug!("circuit breaker {}: now {state:?}", c.name);
            }
        }
    }
}

/// A body from `cache` when fresh there, else fetched and kept as long as the answer allows a
/// shared cache to (not at all when the request carried the client's `credentials`, unless
/// the answer is `public` or has `s-maxage`; never when it has `Vary`). The key and the
/// credentials are only looked at for cached backends: nothing extra on the plain path.
pub async fn cached<F>(
    cache: Option<&RefCell<Cache>>,
    credentials: impl FnOnce() -> bool,
    clock: Clock,
    key: impl FnOnce() -> String,
    fetch: impl FnOnce() -> F,
) -> Result<Bytes, CallError>
where
    F: Future<Output = Result<Reply, UpstreamError>>,
{
    let Some(cache) = cache else {
        return Ok(fetch().await?.body);
    };
    let key = key();
    if let Some(body) = cache.borrow().get(&key, clock.now()) {
        return Ok(body);
    }
    let reply = fetch().await?;
    if let Some(age) = reply.freshness.keep_for(credentials()) {
        let ttl = age.saturating_mul(1_000_000_000);
        cache.borrow_mut().put(key, reply.body.clone(), ttl, clock.now());
    }
    Ok(reply.body)
}

/// `gatelet/retry`: a failed idempotent GET is tried again after a full-jitter pause, up to
/// `attempts` in all, if the pause still leaves time before `deadline`. Answers that are not
/// transport failures or 5xx (a 404, a body too large) are not retried.
pub async fn with_retry<F>(
    retry: Option<crate::config::Retry>,
    clock: Clock,
    deadline: Instant,
    fetch: impl Fn() -> F,
) -> Result<Reply, UpstreamError>
where
    F: Future<Output = Result<Reply, UpstreamError>>,
{
    let Some(crate::config::Retry { attempts, backoff }) = retry else {
        return fetch().await;
    };
    let mut attempt = 1;
    loop {
        let result = fetch().await;
        let retryable = match &result {
            Err(UpstreamError::Connect(_) | UpstreamError::Refused | UpstreamError::Http(_)) => true,
            Err(UpstreamError::Status(s)) => s.status >= 500,
            _ => false,
        };
        if !retryable || attempt >= attempts {
            return result;
        }
        // Full jitter: uniform in [0, backoff], seeded from the clock (fastrand without its
        // std feature has no global generator).
        let mut rng = fastrand::Rng::with_seed(clock.now());
        let pause = Duration::from_nanos(rng.u64(0..=u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX)));
        if Instant::now() + pause >= deadline {
            return result;
        }
        crate::runtime::sleep(pause).await;
        attempt += 1;
    }
}
