//! The journal on this machine's disk (files under the target directory, not a tmpfs): events
//! per second appended as critical (fdatasync each) and as normal (synced every 64 records, and
//! every 100 ms), bytes written to disk per ~200-byte JSON event, the time `open` takes to
//! recover a 100 MB journal (page cache warm), the index's memory per 10 000 queued events,
//! and appends into a full journal (drops by compaction, 1% critical). Prints medians; run with
//! `cargo bench --bench journal`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gatelet::journal::{Class, Journal, Limits};

/// A directory on the disk the build is on, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("journal-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const LIMITS: Limits = Limits {
    max_bytes: 1 << 30,
    max_records: 10_000_000,
    segment_bytes: 4 << 20,
};

/// A bus event of about 200 bytes, as the outbox would queue it.
fn event(i: u64) -> Vec<u8> {
    format!(
        "{{\"type\":\"door\",\"bus\":\"4711\",\"seq\":{i:>10},\"ts\":\"2026-12-02T02:20:31.123Z\",\
         \"stop\":\"Hauptbahnhof/Steig 4\",\"door\":2,\"state\":\"open\",\"lat\":48.137154,\
         \"lon\":11.576124,\"speed\":0.0,\"odometer\":123456}}"
    )
    .into_bytes()
}

/// Bytes this process has had written to the block device (`write_bytes` of /proc/self/io: a
/// whole page each time a clean page is dirtied, so page-level amplification shows).
fn device_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// Events per second over `runs` runs of `n` appends each, with `after` called after each.
fn rate(
    name: &str,
    runs: usize,
    n: u64,
    class: Class,
    mut after: impl FnMut(&mut Journal, Instant) -> Instant,
) -> (f64, f64, f64) {
    let mut rates = Vec::new();
    let mut per_event = Vec::new();
    let mut device = Vec::new();
    for r in 0..runs {
        let dir = Dir::new(&format!("{name}-{r}"));
        let (mut j, _) = Journal::open(&dir.0, LIMITS).unwrap();
        let before = j.stats().bytes_written;
        let device_before = device_bytes();
        let start = Instant::now();
        let mut last_sync = start;
        for i in 0..n {
            j.append(class, &event(i)).unwrap();
            last_sync = after(&mut j, last_sync);
        }
        j.sync().unwrap();
        rates.push(n as f64 / start.elapsed().as_secs_f64());
        per_event.push((j.stats().bytes_written - before) as f64 / n as f64);
        device.push((device_bytes() - device_before) as f64 / n as f64);
    }
    (median(rates), median(per_event), median(device))
}

fn main() {
    let len = event(0).len();
    println!("event: {len} bytes of JSON");

    let (critical, critical_bytes, critical_dev) = rate("critical", 7, 300, Class::Critical, |_, t| t);
    println!(
        "critical (fdatasync each):          {critical:9.0} events/s, {critical_bytes:.1} B written/event, {critical_dev:.0} B to the device"
    );
    let (every64, bytes64, dev64) = rate("normal64", 7, 20_000, Class::Normal, |j, t| {
        if j.stats().next_seq % 64 == 1 {
            j.sync().unwrap();
        }
        t
    });
    println!(
        "normal, synced every 64 records:    {every64:9.0} events/s, {bytes64:.1} B written/event, {dev64:.0} B to the device"
    );
    let (every100ms, bytes100, dev100) = rate("normal100ms", 7, 100_000, Class::Normal, |j, t| {
        if t.elapsed() >= Duration::from_millis(100) {
            j.sync().unwrap();
            Instant::now()
        } else {
            t
        }
    });
    println!(
        "normal, synced every 100 ms:        {every100ms:9.0} events/s, {bytes100:.1} B written/event, {dev100:.0} B to the device"
    );
    // A consumer that keeps up: acknowledges every 64 records (cursor entries, deletions).
    let (acked, acked_bytes, acked_dev) = rate("acked", 7, 20_000, Class::Normal, |j, t| {
        let s = j.stats();
        if s.next_seq % 64 == 1 {
            let durable = j.sync().unwrap();
            j.ack(durable).unwrap();
        }
        t
    });
    println!(
        "normal, synced and acked every 64:  {acked:9.0} events/s, {acked_bytes:.1} B written/event (cursor included), {acked_dev:.0} B to the device"
    );

    // 100 MB of events, then the time to open (recover) it.
    let dir = Dir::new("recovery");
    let (mut j, _) = Journal::open(&dir.0, LIMITS).unwrap();
    let mut i = 0;
    while j.stats().bytes < 100_000_000 {
        j.append(Class::Normal, &event(i)).unwrap();
        i += 1;
    }
    j.sync().unwrap();
    let records = j.stats().records;
    let index = j.index_bytes();
    drop(j);
    let mut opens = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let (j, rec) = Journal::open(&dir.0, LIMITS).unwrap();
        opens.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(rec.records, records);
        assert_eq!(rec.cut_bytes, 0);
        drop(j);
    }
    println!(
        "open (recovery) of 100 MB, {records} records, 4 MiB segments: {:.0} ms (page cache warm)",
        median(opens)
    );
    println!(
        "index: {index} bytes for {records} records = {:.0} bytes per 10 000 queued events",
        index as f64 * 10_000.0 / records as f64
    );
    drop(dir);
    let dir = Dir::new("index10k");
    let (mut j, _) = Journal::open(&dir.0, LIMITS).unwrap();
    for i in 0..10_000 {
        j.append(Class::Normal, &event(i)).unwrap();
    }
    println!(
        "index of a journal of 10 000 events: {} bytes (plus the Journal itself, {} bytes)",
        j.index_bytes(),
        std::mem::size_of::<Journal>()
    );
    drop(j);
    drop(dir);

    // Full: 8 MiB allowed, 1 MiB segments, one event in a hundred critical (fdatasync each),
    // nobody consuming: every segment dropped is rewritten with its critical records.
    let full = Limits {
        max_bytes: 8 << 20,
        max_records: 1_000_000,
        segment_bytes: 1 << 20,
    };
    let class = |k: u64| {
        if k.is_multiple_of(100) {
            Class::Critical
        } else {
            Class::Normal
        }
    };
    let mut rates = Vec::new();
    let mut per_event = Vec::new();
    let mut lost = 0;
    let n = 20_000;
    for r in 0..3 {
        let dir = Dir::new(&format!("full-{r}"));
        let (mut j, _) = Journal::open(&dir.0, full).unwrap();
        let mut i = 0;
        while j.stats().lost == 0 {
            j.append(class(i), &event(i)).unwrap();
            i += 1;
        }
        let before = j.stats();
        let start = Instant::now();
        for k in i..i + n {
            j.append(class(k), &event(k)).unwrap();
            if k % 64 == 63 {
                j.sync().unwrap();
            }
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
        let after = j.stats();
        per_event.push((after.bytes_written - before.bytes_written) as f64 / n as f64);
        lost = after.lost - before.lost;
    }
    println!(
        "full (8 MiB, 1 MiB segments, 1% critical), dropping the oldest: {:.0} events/s, {:.1} B written/event, {lost} of {n} dropped",
        median(rates),
        median(per_event)
    );
}
