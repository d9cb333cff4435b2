//! Proves the limiter's hot path allocates nothing: a counting global allocator, then a
//! million `try_acquire`s on an endpoint bucket and on existing client entries (IP and header
//! keys). Only allocations made by the measuring thread count: the test harness's own threads
//! allocate at times of their choosing (seen: 4 in one CI run), which says nothing of ours.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use gatelet::limiter::bucket::Rate;
use gatelet::limiter::{ClientKeys, EndpointLimit, Strategy};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the measuring thread only (const-initialised: reading it never allocates).
    static MEASURED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if MEASURED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
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
    let by_header = EndpointLimit::new(None, Some((rate, Strategy::Header("x-key".into()))), 10_000, 0);
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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for k in &keys {
        let _ = by_ip.check(k, 0);
        let _ = by_header.check(k, 0);
    }
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > before,
        "the counting allocator counts nothing"
    );
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut admitted = 0u64;
    for i in 0..CALLS {
        let k = &keys[(i % 4) as usize];
        admitted += u64::from(by_ip.check(k, i * 500_000).is_ok());
        admitted += u64::from(by_header.check(k, i * 500_000).is_ok());
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
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
