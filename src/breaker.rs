//! Circuit breaker (KrakenD's backend `qos/circuit-breaker`), sans-io with time passed in.
//! Closed: failures are counted, and the count restarts every `interval`; at exactly
//! `max_errors` consecutive failures (KrakenD opens one failure late) the circuit opens. Open:
//! calls fail at once until `timeout` has passed. Half-open: exactly one probe goes through; its
//! success closes the circuit, its failure (or its cancellation) opens it again.

use crate::time::Nanos;

/// The breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `interval`: the closed-state failure count restarts this often.
    pub interval: Nanos,
    /// `timeout`: how long the circuit stays open before a probe.
    pub timeout: Nanos,
    /// `max_errors`: consecutive failures that open the circuit (≥ 1).
    pub max_errors: u32,
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through; `failures` since `since`.
    Closed { failures: u32, since: Nanos },
    /// Calls fail at once until `until`.
    Open { until: Nanos },
    /// One probe is allowed; `probing` while it is in flight.
    HalfOpen { probing: bool },
}

/// One breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: Settings,
    state: State,
}

/// A call refused because the circuit is open: nanoseconds until a probe may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenCircuit(pub Nanos);

impl Breaker {
    /// A closed breaker at `now`.
    pub fn new(settings: Settings, now: Nanos) -> Breaker {
        Breaker {
            settings,
            state: State::Closed {
                failures: 0,
                since: now,
            },
        }
    }

    /// The current state (after any time-driven transition at `now`).
    pub fn state(&mut self, now: Nanos) -> State {
        self.tick(now);
        self.state
    }

    fn tick(&mut self, now: Nanos) {
        match self.state {
            State::Open { until } if now >= until => self.state = State::HalfOpen { probing: false },
            State::Closed { since, .. } if now.saturating_sub(since) >= self.settings.interval => {
                self.state = State::Closed {
                    failures: 0,
                    since: now,
                };
            }
            _ => {}
        }
    }

    /// Whether a call may go now. A half-open circuit lets exactly one probe through; the
    /// caller must report its outcome with [`Breaker::record`].
    pub fn allow(&mut self, now: Nanos) -> Result<(), OpenCircuit> {
        self.tick(now);
        match self.state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => Err(OpenCircuit(until - now)),
            State::HalfOpen { probing: true } => Err(OpenCircuit(0)),
            State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Ok(())
            }
        }
    }

    /// Reports a call's outcome. Returns `Some(new state)` when the circuit changed state.
    pub fn record(&mut self, now: Nanos, success: bool) -> Option<State> {
        self.tick(now);
        let next = match (self.state, success) {
            (State::Closed { .. }, true) => State::Closed {
                failures: 0,
                since: now,
            },
            (State::Closed { failures, .. }, false) if failures + 1 >= self.settings.max_errors => State::Open {
                until: now.saturating_add(self.settings.timeout),
            },
            (State::Closed { failures, since }, false) => State::Closed {
                failures: failures + 1,
                since,
            },
            (State::HalfOpen { .. }, true) => State::Closed {
                failures: 0,
                since: now,
            },
            (State::HalfOpen { .. }, false) => State::Open {
                until: now.saturating_add(self.settings.timeout),
            },
            // A late result of a call made before the circuit opened changes nothing.
            (State::Open { until }, _) => State::Open { until },
        };
        let changed = std::mem::discriminant(&next) != std::mem::discriminant(&self.state);
        self.state = next;
        changed.then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn breaker(max_errors: u32) -> Breaker {
        Breaker::new(
            Settings {
                interval: 1000 * MS,
                timeout: 500 * MS,
                max_errors,
            },
            0,
        )
    }

    #[test]
    fn opens_at_exactly_max_errors_consecutive_failures() {
        for max in 1..6 {
            let mut b = breaker(max);
            for i in 0..max {
                assert!(b.allow(i as u64).is_ok(), "call {i} of max {max}");
                let changed = b.record(i as u64, false);
                assert_eq!(changed.is_some(), i + 1 == max, "opens on failure {} of {max}", i + 1);
            }
            assert_eq!(b.allow(10), Err(OpenCircuit(500 * MS + max as u64 - 1 - 10)));
        }
    }

    #[test]
    fn a_success_or_a_new_interval_resets_the_count() {
        let mut b = breaker(3);
        b.record(0, false);
        b.record(1, false);
        b.record(2, true);
        b.record(3, false);
        b.record(4, false);
        assert!(matches!(b.state(5), State::Closed { failures: 2, .. }));
        // The interval restarts the count: two old failures do not add to a new one.
        b.record(1000 * MS + 5, false);
        assert!(matches!(b.state(1000 * MS + 6), State::Closed { failures: 1, .. }));
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let mut b = breaker(1);
        b.record(0, false);
        assert!(b.allow(499 * MS).is_err());
        assert!(b.allow(500 * MS).is_ok(), "the probe");
        assert_eq!(b.allow(500 * MS), Err(OpenCircuit(0)), "only one");
        assert_eq!(
            b.record(501 * MS, false),
            Some(State::Open { until: 1001 * MS }),
            "a failed probe reopens"
        );
        assert!(b.allow(1001 * MS).is_ok());
        assert_eq!(
            b.record(1002 * MS, true),
            Some(State::Closed {
                failures: 0,
                since: 1002 * MS
            })
        );
        assert!(b.allow(1003 * MS).is_ok());
    }
}
