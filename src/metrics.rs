//! Counters for `GET /__stats` (Prometheus text format): plain integers on the one thread — no
//! locks, no allocation per request. Requests by endpoint and status class, a latency histogram
//! with fixed integer millisecond buckets, rate-limit refusals, backend failures and timeouts,
//! circuit states, sensor frames and reconnects, open connections, dropped systemd
//! notifications, process RSS.

use std::cell::Cell;
use std::fmt::Write;

/// Upper bounds (ms) of the latency buckets; the last bucket is `+Inf`.
pub const BUCKETS_MS: [u64; 10] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// One endpoint's counters (index `endpoints.len()` holds gatelet's built-ins).
#[derive(Default)]
pub struct EndpointStats {
    by_class: [Cell<u64>; 5],
    latency: [Cell<u64>; BUCKETS_MS.len() + 1],
    latency_sum_ms: Cell<u64>,
    /// Requests refused by a rate limiter.
    pub rate_limited: Cell<u64>,
}

/// One backend's counters.
#[derive(Default)]
pub struct BackendStats {
    /// Calls that failed (any reason but a timeout).
    pub failures: Cell<u64>,
    /// Calls that missed the deadline.
    pub timeouts: Cell<u64>,
}

/// All counters.
pub struct Metrics {
    /// Per endpoint, plus one for built-ins and unrouted requests.
    pub endpoints: Vec<EndpointStats>,
    /// Per endpoint, per backend.
    pub backends: Vec<Vec<BackendStats>>,
    /// Client connections open now, whichever gateway (before or after a reload) serves them:
    /// shared by every gateway of the process.
    pub connections: std::rc::Rc<Cell<u64>>,
}

fn inc(c: &Cell<u64>) {
    c.set(c.get().wrapping_add(1));
}

impl Metrics {
    /// Zeroed counters for `backends_per_endpoint`.
    pub fn new(backends_per_endpoint: impl Iterator<Item = usize>) -> Metrics {
        let backends: Vec<Vec<BackendStats>> = backends_per_endpoint
            .map(|n| (0..n).map(|_| BackendStats::default()).collect())
            .collect();
        Metrics {
            endpoints: (0..=backends.len()).map(|_| EndpointStats::default()).collect(),
            backends,
            connections: std::rc::Rc::new(Cell::new(0)),
        }
    }

    /// Counts one answered request: `endpoint` `None` for built-ins and unrouted requests.
    pub fn request(&self, endpoint: Option<usize>, status: u16, elapsed_ms: u64) {
        let stats = &self.endpoints[endpoint
            .unwrap_or(self.endpoints.len() - 1)
            .min(self.endpoints.len() - 1)];
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        inc(&stats.by_class[class]);
        let bucket = BUCKETS_MS
            .iter()
            .position(|b| elapsed_ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        inc(&stats.latency[bucket]);
        stats
            .latency_sum_ms
            .set(stats.latency_sum_ms.get().wrapping_add(elapsed_ms));
    }

    /// Counts a rate-limit refusal.
    pub fn rate_limited(&self, endpoint: usize) {
        if let Some(s) = self.endpoints.get(endpoint) {
            inc(&s.rate_limited);
        }
    }

    /// Counts a backend failure (`timeout` or other).
    pub fn backend_failed(&self, endpoint: usize, backend: usize, timeout: bool) {
        if let Some(b) = self.backends.get(endpoint).and_then(|e| e.get(backend)) {
            inc(if timeout { &b.timeouts } else { &b.failures });
        }
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Extra series computed when rendering (they live elsewhere).
pub struct Live<'a> {
    /// Endpoint labels, same order as the counters (`METHOD path`).
    pub endpoints: &'a [String],
    /// Backend labels per endpoint.
    pub backends: &'a [Vec<String>],
    /// `(name, state)` of every circuit breaker: 0 closed, 1 half-open, 2 open.
    pub circuits: Vec<(String, u8)>,
    /// `(sensor, frames_ok, frames_bad, reconnects)`.
    pub sensors: Vec<(String, u64, u64, u64)>,
    /// Resident set size in bytes, if known.
    pub rss_bytes: Option<u64>,
    /// systemd notifications dropped since the process started (the reader's queue was full).
    pub sd_notify_dropped: u64,
}

/// Renders everything in the Prometheus text exposition format (0.0.4).
pub fn render(m: &Metrics, live: &Live<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let label = |i: usize| {
        live.endpoints
            .get(i)
            .map_or("gatelet builtin".to_string(), |s| escape(s))
    };
    out.push_str("# HELP gatelet_requests_total Requests answered, by endpoint and status class.\n");
    out.push_str("# TYPE gatelet_requests_total counter\n");
    for (i, s) in m.endpoints.iter().enumerate() {
        for (c, n) in s.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "gatelet_requests_total{{endpoint=\"{}\",class=\"{}xx\"}} {}",
                label(i),
                c + 1,
                n.get()
            );
        }
    }
    out.push_str("# HELP gatelet_request_duration_ms Time to answer, in milliseconds.\n");
    out.push_str("# TYPE gatelet_request_duration_ms histogram\n");
    for (i, s) in m.endpoints.iter().enumerate() {
        let mut cumulative = 0;
        for (b, n) in s.latency.iter().enumerate() {
            cumulative += n.get();
            let le = BUCKETS_MS.get(b).map_or("+Inf".to_string(), |v| v.to_string());
            let _ = writeln!(
                out,
                "gatelet_request_duration_ms_bucket{{endpoint=\"{}\",le=\"{le}\"}} {cumulative}",
                label(i)
            );
        }
        let _ = writeln!(
            out,
            "gatelet_request_duration_ms_sum{{endpoint=\"{}\"}} {}",
            label(i),
            s.latency_sum_ms.get()
        );
        let _ = writeln!(
            out,
            "gatelet_request_duration_ms_count{{endpoint=\"{}\"}} {cumulative}",
            label(i)
        );
    }
    out.push_str("# HELP gatelet_rate_limited_total Requests refused by a rate limiter.\n");
    out.push_str("# TYPE gatelet_rate_limited_total counter\n");
    for (i, s) in m.endpoints.iter().enumerate().take(live.endpoints.len()) {
        let _ = writeln!(
            out,
            "gatelet_rate_limited_total{{endpoint=\"{}\"}} {}",
            label(i),
            s.rate_limited.get()
        );
    }
    out.push_str("# HELP gatelet_backend_failures_total Backend calls that failed, by reason.\n");
    out.push_str("# TYPE gatelet_backend_failures_total counter\n");
    for (e, backends) in m.backends.iter().enumerate() {
        for (b, s) in backends.iter().enumerate() {
            let name = live
                .backends
                .get(e)
                .and_then(|l| l.get(b))
                .map_or(String::new(), |s| escape(s));
            let _ = writeln!(
                out,
                "gatelet_backend_failures_total{{backend=\"{name}\",reason=\"error\"}} {}",
                s.failures.get()
            );
            let _ = writeln!(
                out,
                "gatelet_backend_failures_total{{backend=\"{name}\",reason=\"timeout\"}} {}",
                s.timeouts.get()
            );
        }
    }
    out.push_str("# HELP gatelet_circuit_state Circuit breakers: 0 closed, 1 half-open, 2 open.\n");
    out.push_str("# TYPE gatelet_circuit_state gauge\n");
    for (name, state) in &live.circuits {
        let _ = writeln!(out, "gatelet_circuit_state{{circuit=\"{}\"}} {state}", escape(name));
    }
    out.push_str("# HELP gatelet_sensor_frames_total Sensor frames decoded, by result.\n");
    out.push_str("# TYPE gatelet_sensor_frames_total counter\n");
    for (name, ok, bad, _) in &live.sensors {
        let _ = writeln!(
            out,
            "gatelet_sensor_frames_total{{sensor=\"{}\",result=\"ok\"}} {ok}",
            escape(name)
        );
        let _ = writeln!(
            out,
            "gatelet_sensor_frames_total{{sensor=\"{}\",result=\"bad\"}} {bad}",
            escape(name)
        );
    }
    out.push_str("# HELP gatelet_sensor_reconnects_total Sensor sources reconnected.\n");
    out.push_str("# TYPE gatelet_sensor_reconnects_total counter\n");
    for (name, _, _, reconnects) in &live.sensors {
        let _ = writeln!(
            out,
            "gatelet_sensor_reconnects_total{{sensor=\"{}\"}} {reconnects}",
            escape(name)
        );
    }
    out.push_str("# HELP gatelet_open_connections Client connections open.\n# TYPE gatelet_open_connections gauge\n");
    let _ = writeln!(out, "gatelet_open_connections {}", m.connections.get());
    out.push_str(
        "# HELP gatelet_sd_notify_dropped_total systemd notifications dropped: the notify socket's queue was full.\n# TYPE gatelet_sd_notify_dropped_total counter\n",
    );
    let _ = writeln!(out, "gatelet_sd_notify_dropped_total {}", live.sd_notify_dropped);
    if let Some(rss) = live.rss_bytes {
        out.push_str(
            "# HELP process_resident_memory_bytes Resident memory.\n# TYPE process_resident_memory_bytes gauge\n",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    out
}

/// This process's resident set size, from `/proc/self/statm`.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = rustix::param::page_size() as u64;
    Some(pages * page)
}
