//! Proves the limiter's and the metrics' hot paths allocate nothing: a counting global
//! allocator, then a million `try_acquire`s on an endpoint bucket and on existing client entries (IP and header
//! keys). Only allocations made by the measuring thread count: the test harness's own threads
//! allocate at times of their choosing (seen: 4 in one CI run), which says nothing of ours.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use gatelet::limiter::bucket::Rate;
use gatelet::limiter::{ClientKeys, EndpointLimit, Strategy};

struct Counting;

thread_local! {
    /// Set on a measuring thread only (const-initialised: reading it never allocates).
    static MEASURED: Cell<bool> = const { Cell::new(false) };
    /// That thread's own count: the tests of this binary run in parallel, and a shared counter
    /// would charge one test with another's allocations (seen: 7).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if MEASURED.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CALLS: u64 = 1_000_000;

#[test]
fn a_million_try_acquires_allocate_nothing() {
    let rate = Rate::new(1000, 1000, 1_000_000_000).unwrap();
    let by_ip = EndpointLimit::new(Some(rate), Some((rate, Strategy::Ip(None))), 10_000, 0);
    let by_header = EndpointLimit::new(
        None,
        Some((rate, Strategy::Header(http::HeaderName::from_static("x-key")))),
        10_000,
        0,
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-key", "bus-42".parse().unwrap());
    let peers: Vec<std::net::IpAddr> = (2..6).map(|i| format!("127.0.0.{i}").parse().unwrap()).collect();
    let keys: Vec<ClientKeys<'_>> = peers
        .iter()
        .map(|&peer| ClientKeys {
            peer,
            headers: &headers,
            params: &[],
        })
        .collect();
    // The counter works: creating the client entries allocates, on this thread.
    MEASURED.with(|m| m.set(true));
    let before = allocations();
    for k in &keys {
        let _ = by_ip.check(k, 0);
        let _ = by_header.check(k, 0);
    }
    assert!(allocations() > before, "the counting allocator counts nothing");
    let before = allocations();
    let mut admitted = 0u64;
    for i in 0..CALLS {
        let k = &keys[(i % 4) as usize];
        admitted += u64::from(by_ip.check(k, i * 500_000).is_ok());
        admitted += u64::from(by_header.check(k, i * 500_000).is_ok());
    }
    let after = allocations();
    MEASURED.with(|m| m.set(false));
    assert_eq!(
        after - before,
        0,
        "{} allocations in {} calls",
        after - before,
        2 * CALLS
    );
    // Calls come twice as fast as the rate: both admissions and refusals were exercised.
    assert!(
        admitted > CALLS / 2 && admitted < 2 * CALLS,
        "admitted {admitted} of {}",
        2 * CALLS
    );
}

#[test]
fn metrics_counters_allocate_nothing() {
    // README: "/__stats counters are plain integers on the one thread: no allocation per request".
    let metrics = gatelet::metrics::Metrics::new([2usize, 1].into_iter());
    MEASURED.with(|m| m.set(true));
    let start = allocations();
    drop(std::hint::black_box(vec![0u8; 8]));
    assert!(allocations() > start, "the counting allocator counts nothing");
    let before = allocations();
    for i in 0..CALLS {
        metrics.request(Some((i % 3) as usize), 200 + (i % 400) as u16, i % 7000);
        metrics.rate_limited(0);
        metrics.backend_failed(0, 1, i % 2 == 0);
    }
    let after = allocations();
    MEASURED.with(|m| m.set(false));
    assert_eq!(
        after - before,
        0,
        "{} allocations in {CALLS} requests counted",
        after - before
    );
}
