//! Rate limiting: the integer token bucket ([`bucket`]), the bounded per-client table
//! ([`table`]), and the per-endpoint and per-backend limiters built from them. All sans-io:
//! time is passed in as nanoseconds since a start instant ([`crate::time::Clock`]). Nothing here
//! allocates on the path of a request that hits an existing bucket.
//!
//! Order: client bucket first, then the endpoint bucket, so a rejected client does not
//! spend the endpoint's tokens.

pub mod bucket;
pub mod table;

use std::cell::{Cell, RefCell};
use std::net::IpAddr;

use crate::time::Nanos;
use bucket::{Bucket, Rate, Remaining, RetryAfter};
use table::Table;

/// How a client is told apart (`strategy` of `qos/ratelimit/router`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The socket peer's address; or, when `Some`, the first address in that header.
    Ip(Option<http::HeaderName>),
    /// The value of this header. Missing header: 429.
    Header(http::HeaderName),
    /// The value of the endpoint path parameter at this index.
    Param(usize),
}

/// One shared bucket (an endpoint's or a backend's).
#[derive(Debug)]
pub struct Shared {
    rate: Rate,
    bucket: Cell<Bucket>,
}

impl Shared {
    /// A full bucket of `rate` at `now`.
    pub fn new(rate: Rate, now: Nanos) -> Shared {
        Shared {
            rate,
            bucket: Cell::new(Bucket::full(&rate, now)),
        }
    }

    /// Takes one token.
    pub fn try_acquire(&self, now: Nanos) -> Result<Remaining, RetryAfter> {
        let mut b = self.bucket.get();
        let r = b.try_acquire(&self.rate, now);
        self.bucket.set(b);
        r
    }
}

/// The client part of an endpoint's limit.
#[derive(Debug)]
pub struct PerClient {
    rate: Rate,
    strategy: Strategy,
    by_ip: RefCell<Table<IpAddr>>,
    by_text: RefCell<Table<String>>,
}

/// What a limited request is told: the numbers for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// `RateLimit-Limit`: the bucket size.
    pub limit: u64,
    /// `RateLimit-Remaining`.
    pub remaining: u64,
    /// `RateLimit-Reset`, in nanoseconds (rounded up to seconds in the header).
    pub reset: Nanos,
}

/// A request refused by a limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client's bucket is empty (429); `Retry-After` in ns.
    Client { quota: Quota, retry_after: Nanos },
    /// The endpoint's bucket is empty (503).
    Endpoint { quota: Quota, retry_after: Nanos },
    /// The client key the strategy needs is missing (429), e.g. the header.
    NoClientKey,
}

/// An endpoint's limiter (`qos/ratelimit/router`).
#[derive(Debug)]
pub struct EndpointLimit {
    endpoint: Option<Shared>,
    client: Option<PerClient>,
}

/// The parts of a request a strategy may key on.
pub struct ClientKeys<'r> {
    /// The socket peer.
    pub peer: IpAddr,
    /// The request headers.
    pub headers: &'r http::HeaderMap,
    /// The endpoint's path parameter values.
    pub params: &'r [&'r str],
}

fn quota(rate: &Rate, r: Remaining) -> Quota {
    Quota {
        limit: rate.capacity(),
        remaining: r.tokens,
        reset: r.full_in,
    }
}

fn empty(rate: &Rate, retry: RetryAfter) -> Quota {
    Quota {
        limit: rate.capacity(),
        remaining: 0,
        reset: retry.0,
    }
}

impl EndpointLimit {
    /// A limiter with an optional endpoint-wide rate and an optional per-client rate holding at
    /// most `max_clients` clients.
    pub fn new(
        endpoint: Option<Rate>,
        client: Option<(Rate, Strategy)>,
        max_clients: usize,
        now: Nanos,
    ) -> EndpointLimit {
        EndpointLimit {
            endpoint: endpoint.map(|r| Shared::new(r, now)),
            client: client.map(|(rate, strategy)| PerClient {
                rate,
                strategy,
                by_ip: RefCell::new(Table::new(max_clients)),
                by_text: RefCell::new(Table::new(max_clients)),
            }),
        }
    }

    /// Admits or refuses one request: the client bucket first, then the endpoint's. On
    /// success, the quota to advertise (the client's when there is one).
    pub fn check(&self, keys: &ClientKeys<'_>, now: Nanos) -> Result<Option<Quota>, Refusal> {
        let mut advertised = None;
        if let Some(c) = &self.client {
            let r = match &c.strategy {
                Strategy::Ip(None) => c.by_ip.borrow_mut().try_acquire(&keys.peer, &c.rate, now),
                Strategy::Ip(Some(h)) | Strategy::Header(h) => {
                    let value = keys.headers.get(h).and_then(|v| v.to_str().ok());
                    let value = match &c.strategy {
                        // The first address of an X-Forwarded-For-style list.
                        Strategy::Ip(_) => value.and_then(|v| v.split(',').next()).map(str::trim),
                        _ => value,
                    };
                    match value.filter(|v| !v.is_empty()) {
                        Some(v) => c.by_text.borrow_mut().try_acquire(v, &c.rate, now),
                        None => return Err(Refusal::NoClientKey),
                    }
                }
                Strategy::Param(i) => match keys.params.get(*i) {
                    Some(v) => c.by_text.borrow_mut().try_acquire(*v, &c.rate, now),
                    None => return Err(Refusal::NoClientKey),
                },
            };
            match r {
                Ok(rem) => advertised = Some(quota(&c.rate, rem)),
                Err(retry) => {
                    return Err(Refusal::Client {
                        quota: empty(&c.rate, retry),
                        retry_after: retry.0,
                    });
                }
            }
        }
        if let Some(e) = &self.endpoint {
            match e.try_acquire(now) {
                Ok(rem) => advertised = advertised.or(Some(quota(&e.rate, rem))),
                Err(retry) => {
                    return Err(Refusal::Endpoint {
                        quota: empty(&e.rate, retry),
                        retry_after: retry.0,
                    });
                }
            }
        }
        Ok(advertised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn keys<'r>(peer: &str, headers: &'r http::HeaderMap, params: &'r [&'r str]) -> ClientKeys<'r> {
        ClientKeys {
            peer: peer.parse().unwrap(),
            headers,
            params,
        }
    }

    #[test]
    fn a_refused_client_does_not_spend_the_endpoint_tokens() {
        let l = EndpointLimit::new(
            Some(Rate::new(3, 3, S).unwrap()),
            Some((Rate::new(1, 1, S).unwrap(), Strategy::Ip(None))),
            10,
            0,
        );
        let h = http::HeaderMap::new();
        assert!(l.check(&keys("127.0.0.2", &h, &[]), 0).is_ok());
        for _ in 0..5 {
            assert!(matches!(
                l.check(&keys("127.0.0.2", &h, &[]), 0),
                Err(Refusal::Client { .. })
            ));
        }
        assert!(l.check(&keys("127.0.0.3", &h, &[]), 0).is_ok());
        assert!(l.check(&keys("127.0.0.4", &h, &[]), 0).is_ok());
        assert!(matches!(
            l.check(&keys("127.0.0.5", &h, &[]), 0),
            Err(Refusal::Endpoint { .. })
        ));
    }

    #[test]
    fn header_and_param_strategies_key_on_their_values() {
        let mut h = http::HeaderMap::new();
        let l = EndpointLimit::new(
            None,
            Some((
                Rate::new(1, 1, S).unwrap(),
                Strategy::Header(http::HeaderName::from_static("x-key")),
            )),
            10,
            0,
        );
        assert_eq!(l.check(&keys("127.0.0.1", &h, &[]), 0), Err(Refusal::NoClientKey));
        h.insert("x-key", "a".parse().unwrap());
        let q = l.check(&keys("127.0.0.1", &h, &[]), 0).unwrap().unwrap();
        assert_eq!(
            q,
            Quota {
                limit: 1,
                remaining: 0,
                reset: S
            }
        );
        assert!(matches!(
            l.check(&keys("127.0.0.9", &h, &[]), 0),
            Err(Refusal::Client { retry_after: S, .. })
        ));
        let p = EndpointLimit::new(None, Some((Rate::new(1, 1, S).unwrap(), Strategy::Param(0))), 10, 0);
        assert!(p.check(&keys("127.0.0.1", &h, &["bus1"]), 0).is_ok());
        assert!(p.check(&keys("127.0.0.1", &h, &["bus2"]), 0).is_ok());
        assert!(p.check(&keys("127.0.0.1", &h, &["bus1"]), 0).is_err());
    }

    #[test]
    fn ip_strategy_with_a_key_uses_the_first_forwarded_address() {
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.5, 10.0.0.1".parse().unwrap());
        let l = EndpointLimit::new(
            None,
            Some((
                Rate::new(1, 1, S).unwrap(),
                Strategy::Ip(Some(http::HeaderName::from_static("x-forwarded-for"))),
            )),
            10,
            0,
        );
        assert!(l.check(&keys("127.0.0.1", &h, &[]), 0).is_ok());
        h.insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
        assert!(
            l.check(&keys("127.0.0.2", &h, &[]), 0).is_err(),
            "same first address, other peer"
        );
    }
}
