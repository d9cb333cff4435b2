//! Time, the one way every module reads it: the monotonic [`Clock`] in [`Nanos`] that every
//! sans-io core takes as an argument (limiter, breaker, cache, sensors), RFC 3339 rendering of
//! wall-clock instants, and whether the wall clock can be trusted ([`TimeSync`],
//! [`clock_status`]). A leaf: it depends on nothing else in gatelet.

use std::cell::Cell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Nanoseconds since a [`Clock`] started: the only time the sans-io cores know.
pub type Nanos = u64;

/// A monotonic clock: nanoseconds since it was made.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Nanoseconds since start (saturating after 584 years).
    pub fn now(&self) -> Nanos {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) without a date library: days to civil date after Howard
/// Hinnant's `civil_from_days`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC): [`rfc3339`] with milliseconds, for log lines.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let millis = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_millis());
    let mut s = rfc3339(t);
    s.pop();
    s.push_str(&format!(".{millis:03}Z"));
    s
}

/// 2026-01-01T00:00:00Z: a wall clock before this cannot be right (a Pi without an RTC boots
/// in 1970 until NTP or GPS sets it).
const CLOCK_FLOOR_SECS: u64 = 1_767_225_600;

/// Whether the system clock looks synchronised: `true` when systemd-timesyncd says so
/// (`timesync_flag`), `false` when the clock is before [`CLOCK_FLOOR_SECS`], else unknown.
/// Readings' `age_ms` never depends on it (monotonic clock).
pub fn clock_status(now: SystemTime, timesync_flag: bool) -> Value {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if timesync_flag {
        json!({"synchronized": true, "why": "systemd-timesyncd reports synchronized"})
    } else if secs < CLOCK_FLOOR_SECS {
        json!({"synchronized": false, "why": "the system clock is before 2026: not set yet (ts values are wrong, age_ms is right)"})
    } else {
        json!({"synchronized": null, "why": "unknown: no time-sync flag at /run/systemd/timesync/synchronized"})
    }
}

/// systemd-timesyncd's "synchronised" flag file.
const TIMESYNC_FLAG: &str = "/run/systemd/timesync/synchronized";

/// How long a look at [`TIMESYNC_FLAG`] is trusted.
const TIMESYNC_RECHECK: Nanos = 10_000_000_000;

/// systemd-timesyncd's flag, looked at most every 10 s rather than on every token checked.
#[derive(Debug, Default)]
pub struct TimeSync {
    /// When the flag was last looked at, and what it said.
    last: Cell<Option<(Nanos, bool)>>,
}

impl TimeSync {
    /// Whether systemd-timesyncd says the clock is synchronised, as of `now`.
    pub fn flag(&self, now: Nanos) -> bool {
        match self.last.get() {
            Some((at, flag)) if now.saturating_sub(at) < TIMESYNC_RECHECK => flag,
            _ => {
                let flag = std::path::Path::new(TIMESYNC_FLAG).exists();
                self.last.set(Some((now, flag)));
                flag
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_clock_is_judged_without_trusting_it() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(
            clock_status(at(0), false)["synchronized"],
            false,
            "a Pi that booted in 1970"
        );
        assert_eq!(clock_status(at(0), true)["synchronized"], true, "timesyncd's word wins");
        assert!(clock_status(at(1_795_000_000), false)["synchronized"].is_null());
    }

    #[test]
    fn rfc3339_known_instants() {
        let at = |s| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_392_245), "2026-11-23T00:04:05Z");
    }
}
