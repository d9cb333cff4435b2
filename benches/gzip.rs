//! What gzip (`gatelet/gzip`) saves and costs on answers a central office asks for: a fan-out
//! of 50 buses' status and the health of 50 healths, built here with a bus gatelet's shapes
//! and values that differ from bus to bus. Prints the sizes and, per answer, the median time to
//! gzip it at levels 1, 6 and 9 against the peer, `serde_json` writing the same document (which
//! every answer pays anyway). Run with `cargo bench --bench gzip`.

mod common;

use std::hint::black_box;

use common::median_ns;

use gatelet::compress;
use serde_json::{Value, json};

/// A small deterministic spread of values (no two buses alike).
fn spread(n: u64, salt: u64, range: u64) -> u64 {
    (n.wrapping_mul(2_654_435_761).wrapping_add(salt * 97)) % range
}

fn status(n: u64) -> Value {
    json!({
        "vehicle": format!("bus-{n:02}"), "line": format!("{}", 100 + spread(n, 1, 9)),
        "trip": format!("T{:05}", spread(n, 2, 99_999)), "driver_logged_in": spread(n, 3, 10) > 0,
        "gps": {"lat": 52.4 + spread(n, 4, 20_000) as f64 / 100_000.0, "lon": 13.3 + spread(n, 5, 30_000) as f64 / 100_000.0,
                "speed_kmh": spread(n, 6, 600) as f64 / 10.0, "heading": spread(n, 7, 360), "satellites": 5 + spread(n, 8, 8),
                "utc": format!("2026-11-23T05:40:{:02}Z", spread(n, 9, 60)), "stale": false},
        "fuel_pct": spread(n, 10, 10_000) as f64 / 100.0, "odometer_km": 150_000 + spread(n, 11, 90_000),
        "cabin_temp_c": 18.0 + spread(n, 12, 80) as f64 / 10.0, "on_board": spread(n, 13, 80),
        "doors": {"front": "closed", "middle": if spread(n, 14, 5) == 0 { "open" } else { "closed" }, "rear": "closed"},
        "tyres_psi": {"fl": 31.0 + spread(n, 15, 30) as f64 / 10.0, "fr": 31.0 + spread(n, 16, 30) as f64 / 10.0,
                      "rl": 33.0 + spread(n, 17, 30) as f64 / 10.0, "rr": 33.0 + spread(n, 18, 30) as f64 / 10.0},
        "next_stop": {"id": format!("de:11000:9{:06}", spread(n, 19, 999_999)), "name": format!("Stop {}", spread(n, 20, 400)),
                      "eta": format!("2026-11-23T05:{:02}:{:02}Z", 41 + spread(n, 21, 15), spread(n, 22, 60))},
        "alarms": if spread(n, 23, 7) == 0 { json!([{"code": "E042", "since": "2026-11-23T05:12:00Z"}]) } else { json!([]) },
        "software": "gatelet/0.1.0"
    })
}

fn health(n: u64) -> Value {
    let agent = |salt: u64| {
        json!({"age_ms": spread(n, salt, 2000), "frames_bad": spread(n, salt + 1, 4), "frames_ok": spread(n, salt + 2, 900_000),
               "last_error": if spread(n, salt + 3, 5) == 0 { json!("checksum mismatch") } else { Value::Null },
               "reconnects": spread(n, salt + 4, 3), "status": "ok"})
    };
    json!({
        "status": if spread(n, 30, 9) == 0 { "degraded" } else { "ok" }, "latency_ms": 20 + spread(n, 31, 300),
        "last_seen": format!("2026-11-23T05:40:{:02}Z", spread(n, 32, 60)),
        "health": {"agents": {"gps": agent(40), "engine": agent(50), "passengers": agent(60)},
                   "clock": {"synchronized": true, "why": "systemd-timesyncd says synchronized"},
                   "now": format!("2026-11-23T05:40:{:02}Z", spread(n, 33, 60)), "status": "ok"}
    })
}

fn report(name: &str, doc: &Value) {
    let bytes = serde_json::to_vec(doc).unwrap();
    let n = 200;
    let serialise = median_ns(n, || {
        black_box(serde_json::to_vec(black_box(doc)).unwrap());
    });
    println!("{name}: {} bytes of JSON", bytes.len());
    println!("  serde_json::to_vec (the peer): {:>8.1} µs", serialise / 1000.0);
    for level in [1, 4, 6, 9] {
        let size = compress::gzip(&bytes, level).len();
        let t = median_ns(n, || {
            black_box(compress::gzip(black_box(&bytes), level));
        });
        println!(
            "  gzip level {level}: {size:>6} bytes ({:>4.1}% of it), {:>8.1} µs = {:.1}x serde_json",
            100.0 * size as f64 / bytes.len() as f64,
            t / 1000.0,
            t / serialise
        );
    }
}

fn main() {
    let fan_out: serde_json::Map<String, Value> = (1..=50).map(|n| (format!("bus-{n:02}"), status(n))).collect();
    report("fan-out, 50 buses' status", &Value::Object(fan_out));
    let members: serde_json::Map<String, Value> = (1..=50).map(|n| (format!("bus-{n:02}"), health(n))).collect();
    let fleet_health = json!({"status": "degraded", "members": members, "ok": 45, "degraded": 5, "unreachable": 0});
    report("/__fleet/health, 50 buses", &fleet_health);
    report("one bus's status", &status(17));
}
