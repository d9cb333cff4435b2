//! Cost of one backend-cache insertion that evicts, at 1 000 and at 100 000 entries, against
//! two peers measured in the same run: a plain `HashMap` insertion of the same key and body,
//! and the same cache evicting by a scan for the soonest to expire (what gatelet did before it
//! kept entries in expiry order). Prints medians of 21 runs and the ratios; run with
//! `cargo bench --bench cache`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use gatelet::cache::{Bounds, Cache};

const S: u64 = 1_000_000_000;

fn median_ns(iterations: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut runs: Vec<f64> = (0..21u64)
        .map(|r| {
            let start = Instant::now();
            for i in 0..iterations {
                f(r * iterations + i);
            }
            start.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// A full cache of `n` entries, then the median cost of one more `put` (each evicts one).
fn put_when_full(n: usize) -> f64 {
    let mut cache = Cache::new(Bounds {
        max_items: n,
        max_size: usize::MAX,
    });
    let body = Bytes::from_static(b"{\"fuel\":71}");
    for i in 0..n as u64 {
        // Scrambled expiries, like answers with different max-ages arriving over time.
        cache.put(
            format!("/bus/{i}?q={}", i * 7919 % 1000),
            body.clone(),
            (i * 7919 % 100_000 + 3600) * S,
            0,
        );
    }
    median_ns(2_000, |i| {
        cache.put(format!("/bus/new/{i}"), body.clone(), (200_000 + i) * S, 0);
        black_box(cache.len());
    })
}

/// The scanning peer: a map, and eviction by a scan for the soonest to expire.
fn scan_put_when_full(n: usize) -> f64 {
    let mut entries: HashMap<String, (Bytes, u64)> = HashMap::new();
    let body = Bytes::from_static(b"{\"fuel\":71}");
    for i in 0..n as u64 {
        entries.insert(
            format!("/bus/{i}?q={}", i * 7919 % 1000),
            (body.clone(), (i * 7919 % 100_000 + 3600) * S),
        );
    }
    median_ns(if n > 10_000 { 20 } else { 2_000 }, |i| {
        while entries.len() >= n {
            let victim = entries.iter().min_by_key(|(_, e)| e.1).map(|(k, _)| k.clone());
            match victim {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
        entries.insert(format!("/bus/new/{i}"), (body.clone(), (200_000 + i) * S));
        black_box(entries.len());
    })
}

fn main() {
    let body = Bytes::from_static(b"{\"fuel\":71}");
    let mut map: HashMap<String, Bytes> = HashMap::new();
    let peer = median_ns(2_000, |i| {
        map.insert(format!("/bus/new/{i}"), body.clone());
        black_box(map.len());
    });
    let small = put_when_full(1_000);
    let large = put_when_full(100_000);
    println!("HashMap insert (peer):            {peer:8.0} ns");
    println!(
        "Cache put, full at 1 000 entries:   {small:8.0} ns ({:.1}x the peer)",
        small / peer
    );
    println!(
        "Cache put, full at 100 000 entries: {large:8.0} ns ({:.1}x the peer)",
        large / peer
    );
    let scan_small = scan_put_when_full(1_000);
    let scan_large = scan_put_when_full(100_000);
    println!("Scanning peer, 1 000 entries:       {scan_small:8.0} ns");
    println!("Scanning peer, 100 000 entries:     {scan_large:8.0} ns");
    println!(
        "100 000 / 1 000 entries: {:.1}x in expiry order, {:.1}x by scan; at 100 000 the scan costs {:.0}x",
        large / small,
        scan_large / scan_small,
        scan_large / large
    );
}
