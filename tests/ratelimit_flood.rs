//! A flood of 100 000 distinct client keys against an endpoint limited per client: the client
//! table stays at its cap (the least recently seen keys are forgotten, so the first key is
//! admitted again while the newest is still refused) and the process's RSS stays flat. Alone in
//! its test binary so no other test's memory is measured.

mod common;

use common::*;

const KEYS: usize = 100_000;
const MAX_CLIENTS: usize = 1_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

fn req(key: usize) -> Vec<u8> {
    format!("GET /t HTTP/1.1\r\nHost: gw.test\r\nX-Bus: bus-{key}\r\n\r\n").into_bytes()
}

#[test]
fn a_flood_of_distinct_keys_keeps_the_table_at_its_cap_and_rss_flat() {
    // Admitted requests go to a closed port (502): cheap, and still tells admitted from refused.
    let gw = gateway(&format!(
        r#"{{"version": 3, "endpoints": [{{"endpoint": "/t",
            "extra_config": {{
                "qos/ratelimit/router": {{"client_max_rate": 1, "every": "1h", "strategy": "header", "key": "X-Bus"}},
                "gatelet/ratelimit": {{"max_clients": {MAX_CLIENTS}}}}},
            "backend": [{{"host": ["http://{}"], "url_pattern": "/"}}]}}]}}"#,
        refused_addr()
    ));
    let mut s = connect(gw);
    // Fill the table twice over, then measure.
    let warm = pipeline(&mut s, (0..2 * MAX_CLIENTS).map(req), 250);
    assert!(warm.iter().all(|r| r.status == 502), "every new key is admitted");
    let before = rss_kib();
    // In slices, so the test's own record of responses stays small.
    for start in (2 * MAX_CLIENTS..KEYS).step_by(1000) {
        let got = pipeline(&mut s, (start..(start + 1000).min(KEYS)).map(req), 250);
        assert!(got.iter().all(|r| r.status == 502), "every new key is admitted");
    }
    let after = rss_kib();
    // The newest key is remembered (refused), the oldest was forgotten (admitted again).
    let check = pipeline(&mut s, [req(KEYS - 1), req(0)].into_iter(), 2);
    assert_eq!(check[0].status, 429, "the newest key is still tracked");
    assert_eq!(check[1].status, 502, "the first key was evicted: the table is bounded");
    let grown = after.saturating_sub(before);
    assert!(
        grown < 2048,
        "RSS grew {grown} KiB over {KEYS} distinct keys ({before} -> {after} KiB)"
    );
}
