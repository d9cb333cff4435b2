//! The token bucket: integer arithmetic only, time passed in, no allocation, no I/O.
//!
//! Exactness comes from the unit: one token is `every_ns` *units* and the bucket gains
//! `max_rate` units per nanosecond, so after `t` ns starting full it has admitted exactly
//! `capacity + floor(t * max_rate / every_ns)` requests — fractional rates (0.5/s is
//! `max_rate 1, every 2s`) included, with no rounding drift. The level never exceeds
//! `capacity` tokens, so an idle bucket never grants `capacity + 1` (KrakenD's quirk).

use crate::time::Nanos;

/// Tokens left after an admitted request, and the limit, for `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    /// Whole tokens left.
    pub tokens: u64,
    /// Nanoseconds until the bucket is full again.
    pub full_in: Nanos,
}

/// A refused request: nanoseconds until one token is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Nanos);

/// Why bucket parameters are unusable (the config layer turns these into config errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateError {
    /// `max_rate` is zero.
    ZeroRate,
    /// `capacity` is zero.
    ZeroCapacity,
    /// `every` is zero.
    ZeroPeriod,
    /// `capacity × every` does not fit the 64-bit level.
    TooLarge,
}

/// A bucket's fixed parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    max_rate: u64,
    capacity: u64,
    every_ns: u64,
    /// `capacity × every_ns`: the full level in units.
    full: u64,
}

impl Rate {
    /// `max_rate` tokens per `every_ns`, holding at most `capacity`.
    pub fn new(max_rate: u64, capacity: u64, every_ns: u64) -> Result<Rate, RateError> {
        if max_rate == 0 {
            return Err(RateError::ZeroRate);
        }
        if capacity == 0 {
            return Err(RateError::ZeroCapacity);
        }
        if every_ns == 0 {
            return Err(RateError::ZeroPeriod);
        }
        let full = capacity.checked_mul(every_ns).ok_or(RateError::TooLarge)?;
        Ok(Rate {
            max_rate,
            capacity,
            every_ns,
            full,
        })
    }

    /// The bucket size in tokens (`RateLimit-Limit`).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

/// One bucket: its level in units and when it was last brought up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    level: u64,
    updated: Nanos,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(rate: &Rate, now: Nanos) -> Bucket {
        Bucket {
            level: rate.full,
            updated: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_acquire(&mut self, rate: &Rate, now: Nanos) -> Result<Remaining, RetryAfter> {
        // Time never runs backwards for the bucket: an older `now` adds nothing.
        let elapsed = now.saturating_sub(self.updated);
        self.updated = self.updated.max(now);
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(rate.max_rate))
            .min(rate.full);
        if self.level < rate.every_ns {
            let missing = rate.every_ns - self.level;
            return Err(RetryAfter(missing.div_ceil(rate.max_rate)));
        }
        self.level -= rate.every_ns;
        Ok(Remaining {
            tokens: self.level / rate.every_ns,
            full_in: (rate.full - self.level).div_ceil(rate.max_rate),
        })
    }
}

/// Whole seconds, rounded up, for `Retry-After` and `RateLimit-Reset`.
pub fn ceil_secs(ns: Nanos) -> u64 {
    ns.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Drains the bucket greedily from full over `[0, span]`, asking again exactly when
    /// `RetryAfter` says a token arrives; at every refusal the count admitted so far must equal
    /// `capacity + floor(t * max_rate / every)`, and one nanosecond earlier must be refused.
    /// (Time is whole nanoseconds: with capacity 1 and a token interval that is not a whole
    /// number of ns, e.g. 3/s, a token cannot be asked for at its exact arrival and the
    /// sub-nanosecond excess over the cap is dropped, as in any capped bucket. The cases
    /// below avoid that combination; capacity ≥ 2 never overflows when drained greedily.)
    fn drain_exactly(rate: &Rate, span: Nanos) {
        let closed = |t: Nanos| rate.capacity + (t as u128 * rate.max_rate as u128 / rate.every_ns as u128) as u64;
        let (mut b, mut t, mut ok) = (Bucket::full(rate, 0), 0, 0);
        loop {
            match b.try_acquire(rate, t) {
                Ok(_) => ok += 1,
                Err(RetryAfter(d)) => {
                    assert_eq!(ok, closed(t), "t={t} rate={rate:?}");
                    if d > 1 {
                        let mut early = b;
                        assert!(early.try_acquire(rate, t + d - 1).is_err(), "a token before RetryAfter");
                    }
                    if t == span {
                        return;
                    }
                    t = (t + d).min(span);
                }
            }
        }
    }

    #[test]
    fn admits_exactly_capacity_plus_floor_rate_times_elapsed() {
        for &(max_rate, capacity, every) in &[
            (5, 5, S),
            (1, 1, 2 * S),
            (1, 3, 2 * S),
            (4, 1, S),
            (3, 2, S),
            (10, 20, 60 * S),
            (7, 2, 3 * S),
            (1000, 1000, S),
            (1, 1, 3_600 * S),
        ] {
            let rate = Rate::new(max_rate, capacity, every).unwrap();
            for &span in &[0, 1, S / 3, S, 7 * S + 13, 100 * S] {
                drain_exactly(&rate, span);
            }
        }
    }

    #[test]
    fn half_a_token_per_second_is_exact() {
        let rate = Rate::new(1, 1, 2 * S).unwrap();
        let mut b = Bucket::full(&rate, 0);
        assert!(b.try_acquire(&rate, 0).is_ok());
        assert_eq!(b.try_acquire(&rate, 0), Err(RetryAfter(2 * S)));
        assert_eq!(b.try_acquire(&rate, 2 * S - 1), Err(RetryAfter(1)));
        assert!(b.try_acquire(&rate, 2 * S).is_ok());
    }

    #[test]
    fn a_long_idle_bucket_holds_capacity_not_capacity_plus_one() {
        let rate = Rate::new(5, 5, S).unwrap();
        let mut b = Bucket::full(&rate, 0);
        let day = 86_400 * S;
        let ok = (0..100).filter(|_| b.try_acquire(&rate, day).is_ok()).count();
        assert_eq!(ok, 5);
        // A level near the top with a huge elapsed time saturates instead of overflowing.
        let mut b = Bucket::full(&rate, 0);
        assert!(b.try_acquire(&rate, u64::MAX).is_ok());
        assert_eq!(b.try_acquire(&rate, u64::MAX).map(|r| r.tokens), Ok(3));
    }

    #[test]
    fn remaining_and_retry_after_report_the_right_numbers() {
        let rate = Rate::new(2, 4, S).unwrap();
        let mut b = Bucket::full(&rate, 0);
        assert_eq!(
            b.try_acquire(&rate, 0),
            Ok(Remaining {
                tokens: 3,
                full_in: S / 2
            })
        );
        for _ in 0..3 {
            b.try_acquire(&rate, 0).unwrap();
        }
        assert_eq!(b.try_acquire(&rate, 0), Err(RetryAfter(S / 2)));
        assert_eq!(ceil_secs(S / 2), 1);
        assert_eq!(ceil_secs(2 * S), 2);
        assert_eq!(ceil_secs(0), 0);
    }

    #[test]
    fn time_going_backwards_grants_nothing_extra() {
        let rate = Rate::new(1, 1, S).unwrap();
        let mut b = Bucket::full(&rate, 10 * S);
        assert!(b.try_acquire(&rate, 10 * S).is_ok());
        assert!(b.try_acquire(&rate, 5 * S).is_err());
        assert!(b.try_acquire(&rate, 10 * S + S - 1).is_err());
        assert!(b.try_acquire(&rate, 11 * S).is_ok());
    }

    #[test]
    fn unusable_parameters_are_errors_not_clamps() {
        assert_eq!(Rate::new(0, 1, S), Err(RateError::ZeroRate));
        assert_eq!(Rate::new(1, 0, S), Err(RateError::ZeroCapacity));
        assert_eq!(Rate::new(1, 1, 0), Err(RateError::ZeroPeriod));
        assert_eq!(Rate::new(1, u64::MAX, S), Err(RateError::TooLarge));
    }
}
