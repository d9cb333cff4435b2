//! ns per `try_acquire` on the paths a request takes: the endpoint bucket alone, and the full
//! endpoint check with a per-client bucket keyed by IP and by header (existing entries, in a
//! table of 10 000 clients). The peer, measured in the same run, is a textbook floating-point
//! bucket (tokens as f64, refill by elapsed seconds × rate: the shape of KrakenD's). Medians of
//! 21 runs; run with `cargo bench --bench limiter`.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use gatelet::limiter::bucket::{Bucket, Rate};
use gatelet::limiter::{ClientKeys, EndpointLimit, Strategy};

const S: u64 = 1_000_000_000;

fn median_ns(iterations: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut runs: Vec<f64> = (0..21)
        .map(|_| {
            let start = Instant::now();
            for i in 0..iterations {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// The peer: floating-point tokens.
struct FloatBucket {
    tokens: f64,
    capacity: f64,
    rate_per_ns: f64,
    last: u64,
}

impl FloatBucket {
    fn allow(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.last) as f64;
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate_per_ns).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn main() {
    let n = 2_000_000;
    // Calls arrive twice as fast as the rate: half admitted, half refused.
    let step = S / 2000;
    let rate = Rate::new(1000, 1000, S).unwrap();

    let mut peer = FloatBucket {
        tokens: 1000.0,
        capacity: 1000.0,
        rate_per_ns: 1000.0 / S as f64,
        last: 0,
    };
    let float = median_ns(n, |i| {
        black_box(peer.allow(black_box(i * step)));
    });

    let mut bucket = Bucket::full(&rate, 0);
    let integer = median_ns(n, |i| {
        black_box(bucket.try_acquire(&rate, black_box(i * step)).is_ok());
    });

    let headers_for = |key: &str| {
        let mut h = http::HeaderMap::new();
        h.insert("x-bus", key.parse().unwrap());
        h
    };
    let header_maps: Vec<http::HeaderMap> = (0..64).map(|k| headers_for(&format!("bus-{k}"))).collect();
    let peers: Vec<IpAddr> = (0..64).map(|k| IpAddr::from([10, 0, 0, k as u8])).collect();

    let by_ip = EndpointLimit::new(Some(rate), Some((rate, Strategy::Ip(None))), 10_000, 0);
    let by_header = EndpointLimit::new(
        Some(rate),
        Some((rate, Strategy::Header(http::HeaderName::from_static("x-bus")))),
        10_000,
        0,
    );
    // Fill both tables to 10 000 clients so lookups run in a full table.
    let empty = http::HeaderMap::new();
    for k in 0..10_000u32 {
        let ip = IpAddr::from(k.to_be_bytes());
        let _ = by_ip.check(
            &ClientKeys {
                peer: ip,
                headers: &empty,
                params: &[],
            },
            0,
        );
        let h = headers_for(&format!("fill-{k}"));
        let _ = by_header.check(
            &ClientKeys {
                peer: ip,
                headers: &h,
                params: &[],
            },
            0,
        );
    }
    for k in 0..64 {
        let _ = by_ip.check(
            &ClientKeys {
                peer: peers[k],
                headers: &empty,
                params: &[],
            },
            0,
        );
        let _ = by_header.check(
            &ClientKeys {
                peer: peers[0],
                headers: &header_maps[k],
                params: &[],
            },
            0,
        );
    }
    let ip_path = median_ns(n, |i| {
        let keys = ClientKeys {
            peer: peers[(i % 64) as usize],
            headers: &empty,
            params: &[],
        };
        black_box(by_ip.check(&keys, black_box(i * step)).is_ok());
    });
    let header_path = median_ns(n, |i| {
        let keys = ClientKeys {
            peer: peers[0],
            headers: &header_maps[(i % 64) as usize],
            params: &[],
        };
        black_box(by_header.check(&keys, black_box(i * step)).is_ok());
    });

    println!("float bucket (peer):                     {float:>6.1} ns/call");
    println!(
        "integer bucket, endpoint path:           {integer:>6.1} ns/call  ({:.2}x peer)",
        integer / float
    );
    println!(
        "endpoint + client by IP (10k clients):   {ip_path:>6.1} ns/call  ({:.2}x peer)",
        ip_path / float
    );
    println!(
        "endpoint + client by header (10k):       {header_path:>6.1} ns/call  ({:.2}x peer)",
        header_path / float
    );
}
