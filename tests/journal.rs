//! The journal on real files: round trips across reopen, acknowledgement and segment deletion,
//! power loss at every byte of the last records, exact loss accounting under the limits, and
//! garbage segment files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use gatelet::journal::{Class, Entry, Error, Journal, Kind, Limits};

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "gatelet-journal-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const ROOMY: Limits = Limits {
    max_bytes: 1 << 30,
    max_records: 1 << 20,
    segment_bytes: 1 << 20,
};

fn payload(i: u64) -> Vec<u8> {
    format!("{{\"event\":{i},\"pad\":\"{}\"}}", "x".repeat((i % 37) as usize)).into_bytes()
}

fn read_all(j: &mut Journal, after: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = after;
    loop {
        let before = out.len();
        j.read(at, 7, 1 << 20, &mut out).unwrap();
        if out.len() == before {
            return out;
        }
        at = out.last().unwrap().seq;
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A journal of `n` normal records, synced.
fn normal_log(dir: &Path, limits: Limits, n: u64) -> Journal {
    let (mut j, _) = Journal::open(dir, limits).unwrap();
    for i in 0..n {
        j.append(Class::Normal, &payload(i)).unwrap();
    }
    j.sync().unwrap();
    j
}

#[test]
fn records_round_trip_across_reopen_and_only_durable_ones_are_read() {
    let dir = TempDir::new("roundtrip");
    let (mut j, rec) = Journal::open(&dir.0, ROOMY).unwrap();
    assert_eq!(rec.records, 0);
    assert_eq!(j.stats().next_seq, 1);
    let mut expected = Vec::new();
    for i in 0..100u64 {
        let class = if i % 10 == 3 { Class::Critical } else { Class::Normal };
        let seq = j.append(class, &payload(i)).unwrap();
        assert_eq!(seq, i + 1);
        expected.push((seq, class, payload(i)));
    }
    assert!(j.dirty());
    // Durable so far: up to the last critical event (seq 94).
    assert_eq!(j.stats().durable, 94);
    assert_eq!(read_all(&mut j, 0).len(), 94);
    assert_eq!(j.sync().unwrap(), 100);
    assert!(!j.dirty());
    let check = |got: Vec<Entry>| {
        assert_eq!(got.len(), expected.len());
        for (e, (seq, class, p)) in got.iter().zip(&expected) {
            assert_eq!(e.seq, *seq);
            assert_eq!(e.kind, Kind::Event(*class));
            assert_eq!(&e.payload, p);
        }
    };
    check(read_all(&mut j, 0));
    // Bounds: at most the records asked for, at least one whatever the byte budget.
    let mut out = Vec::new();
    j.read(10, 5, 1 << 20, &mut out).unwrap();
    assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), [11, 12, 13, 14, 15]);
    out.clear();
    j.read(10, 5, 1, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seq, 11);
    out.clear();
    j.read(100, 5, 1 << 20, &mut out).unwrap();
    assert!(out.is_empty());
    drop(j);

    let (mut j, rec) = Journal::open(&dir.0, ROOMY).unwrap();
    assert_eq!(rec.records, 100);
    assert_eq!(rec.cut_bytes, 0);
    assert_eq!(j.stats().durable, 100);
    assert_eq!(j.stats().next_seq, 101);
    check(read_all(&mut j, 0));
    j.ack(40).unwrap();
    assert_eq!(j.oldest(), 41);
    drop(j);
    let (j, _) = Journal::open(&dir.0, ROOMY).unwrap();
    assert_eq!(j.stats().acked, 40);
    assert_eq!(j.oldest(), 41);
}

#[test]
fn segments_rotate_and_acknowledged_ones_are_deleted_and_numbering_continues() {
    let dir = TempDir::new("rotate");
    let limits = Limits {
        segment_bytes: 1024,
        ..ROOMY
    };
    let mut j = normal_log(&dir.0, limits, 200);
    let files = segment_files(&dir.0).len();
    assert!(files > 10, "{files} segments");
    assert_eq!(j.segments(), files);
    for f in segment_files(&dir.0) {
        assert!(fs::metadata(&f).unwrap().len() <= 1024);
    }
    // Half acknowledged: the segments wholly below 100 go, the rest stays readable.
    j.ack(100).unwrap();
    let left = segment_files(&dir.0).len();
    assert!(left < files && left > 1, "{left} of {files}");
    let rest = read_all(&mut j, 100);
    assert_eq!(rest.first().unwrap().seq, 101);
    assert_eq!(rest.len(), 100);
    assert_eq!(j.stats().records, j.stats().records.min(200));
    // Everything acknowledged: only the active segment is left, and a restart continues the
    // numbering rather than starting again at 1 (the consumer deduplicates by number).
    j.ack(200).unwrap();
    assert_eq!(segment_files(&dir.0).len(), 1);
    drop(j);
    let (mut j, _) = Journal::open(&dir.0, limits).unwrap();
    assert_eq!(j.stats().acked, 200);
    assert_eq!(j.oldest(), 0);
    assert_eq!(j.append(Class::Normal, b"next").unwrap(), 201);
    j.sync().unwrap();
    assert_eq!(read_all(&mut j, 200).iter().map(|e| e.seq).collect::<Vec<_>>(), [201]);
    // Even with every segment file gone, the cursor keeps the numbering.
    j.ack(201).unwrap();
    drop(j);
    for f in segment_files(&dir.0) {
        fs::remove_file(f).unwrap();
    }
    let (mut j, _) = Journal::open(&dir.0, limits).unwrap();
    assert_eq!(j.append(Class::Normal, b"after").unwrap(), 202);
}

#[test]
fn too_large_payloads_are_refused_without_a_trace() {
    let dir = TempDir::new("large");
    let (mut j, _) = Journal::open(&dir.0, ROOMY).unwrap();
    assert!(matches!(
        j.append(Class::Normal, &vec![0; gatelet::journal::MAX_PAYLOAD + 1]),
        Err(Error::TooLarge)
    ));
    assert_eq!(
        j.append(Class::Normal, &vec![7; gatelet::journal::MAX_PAYLOAD])
            .unwrap(),
        1
    );
    assert_eq!(j.stats().lost, 0);
}

/// Appends records one at a time (each synced) and returns each record's end offset in the
/// last segment file and the payloads.
fn synced_log(dir: &Path, n: u64) -> (Vec<u64>, Vec<Vec<u8>>) {
    let (mut j, _) = Journal::open(dir, ROOMY).unwrap();
    let mut ends = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..n {
        let class = if i % 2 == 0 { Class::Normal } else { Class::Critical };
        j.append(class, &payload(i)).unwrap();
        j.sync().unwrap();
        let last = segment_files(dir).pop().unwrap();
        ends.push(fs::metadata(last).unwrap().len());
        payloads.push(payload(i));
    }
    (ends, payloads)
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Truncate,
    Zeros,
    Garbage,
}

#[test]
fn power_loss_at_every_byte_of_the_last_records_leaves_exactly_a_prefix() {
    let src = TempDir::new("power-src");
    let n = 20u64;
    let (ends, payloads) = synced_log(&src.0, n);
    let seg_name = segment_files(&src.0).pop().unwrap().file_name().unwrap().to_owned();
    let from = ends[ends.len() - 4];
    let to = *ends.last().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for cut in from..to {
        for damage in [Damage::Truncate, Damage::Zeros, Damage::Garbage] {
            let dir = TempDir::new("power");
            copy_dir(&src.0, &dir.0);
            let seg = dir.0.join(&seg_name);
            let mut bytes = fs::read(&seg).unwrap();
            match damage {
                Damage::Truncate => bytes.truncate(cut as usize),
                Damage::Zeros => bytes[cut as usize..].fill(0),
                Damage::Garbage => {
                    let g = rng.bytes(bytes.len() - cut as usize);
                    bytes[cut as usize..].copy_from_slice(&g);
                }
            }
            fs::write(&seg, &bytes).unwrap();
            let (mut j, rec) = Journal::open(&dir.0, ROOMY).unwrap_or_else(|e| panic!("cut {cut} {damage:?}: {e}"));
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            let got = read_all(&mut j, 0);
            assert_eq!(got.len(), whole, "cut {cut} {damage:?}");
            assert_eq!(rec.records as usize, whole);
            let len = match damage {
                Damage::Truncate => cut,
                Damage::Zeros | Damage::Garbage => to,
            };
            assert_eq!(rec.cut_bytes, len - ends[whole - 1], "cut {cut} {damage:?}");
            for (i, e) in got.iter().enumerate() {
                assert_eq!(e.seq, i as u64 + 1);
                assert_eq!(e.payload, payloads[i]);
            }
            // The log goes on from there, and a second open finds it clean.
            let seq = j.append(Class::Critical, b"after").unwrap();
            assert_eq!(seq, whole as u64 + 1);
            drop(j);
            let (mut j, rec) = Journal::open(&dir.0, ROOMY).unwrap();
            assert_eq!(rec.cut_bytes, 0);
            assert_eq!(read_all(&mut j, 0).len(), whole + 1);
            checked += 1;
        }
    }
    assert!(checked > 3 * 3 * 17, "{checked}");
}

#[test]
fn a_damaged_older_segment_is_cut_and_later_segments_survive() {
    let dir = TempDir::new("older");
    let limits = Limits {
        segment_bytes: 512,
        ..ROOMY
    };
    drop(normal_log(&dir.0, limits, 60));
    let files = segment_files(&dir.0);
    assert!(files.len() >= 3);
    let mut bytes = fs::read(&files[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&files[1], &bytes).unwrap();
    let (mut j, rec) = Journal::open(&dir.0, limits).unwrap();
    assert!(rec.cut_bytes > 0);
    let got = read_all(&mut j, 0);
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert!(seqs.len() < 60);
    assert_eq!(*seqs.last().unwrap(), 60, "the later segments are kept");
    for e in &got {
        assert_eq!(e.payload, payload(e.seq - 1));
    }
}

/// Checks the loss accounting of everything the consumer got (`consumed`, then the rest of
/// the journal) against what was accepted.
fn check_accounting(j: &mut Journal, consumed: &[Entry], accepted: &BTreeMap<u64, Class>, refused: u64) {
    j.sync().unwrap();
    let acked = j.stats().acked;
    let rest = read_all(j, acked);
    assert_eq!(j.oldest(), rest.first().map_or(0, |e| e.seq));
    let mut present = BTreeSet::new();
    let mut reported = 0;
    let mut ranges = Vec::new();
    for e in consumed.iter().chain(&rest) {
        match e.kind {
            Kind::Event(class) => {
                assert_eq!(accepted.get(&e.seq), Some(&class), "seq {}", e.seq);
                assert!(present.insert(e.seq), "{} twice", e.seq);
            }
            Kind::Lost { count, first, last } => {
                assert!(count > 0 && first <= last && last < e.seq);
                reported += count;
                ranges.push((first, last));
            }
        }
    }
    let mut dropped = 0;
    let mut unreported = 0;
    for (seq, class) in accepted {
        if !present.contains(seq) {
            assert_eq!(*class, Class::Normal, "critical {seq} dropped");
            if !ranges.iter().any(|&(f, l)| f <= *seq && *seq <= l) {
                unreported += 1;
            }
            dropped += 1;
        }
    }
    // Drops not yet reported are pending (with refusals, when a drop did not make room enough).
    assert!(unreported <= j.lost_pending(), "{unreported} unreported");
    let s = j.stats();
    assert_eq!(dropped + refused, s.lost);
    assert_eq!(reported + j.lost_pending(), s.lost);
}

#[test]
fn over_the_limits_normal_records_are_dropped_and_every_loss_is_counted() {
    let dir = TempDir::new("bounds");
    let limits = Limits {
        max_bytes: 8 * 1024,
        max_records: 100,
        segment_bytes: 1024,
    };
    let (mut j, _) = Journal::open(&dir.0, limits).unwrap();
    let mut rng = Rng(42);
    let mut accepted = BTreeMap::new();
    let mut consumed = Vec::new();
    let mut refused = 0;
    for i in 0..4500u64 {
        let class = if rng.below(10) == 0 {
            Class::Critical
        } else {
            Class::Normal
        };
        match j.append(class, &payload(i)) {
            Ok(seq) => {
                accepted.insert(seq, class);
            }
            Err(Error::Full) => refused += 1,
            Err(e) => panic!("{e}"),
        }
        let s = j.stats();
        assert!(s.records <= limits.max_records && s.bytes <= limits.max_bytes);
        // Now and then the consumer takes everything there is and acknowledges it.
        if i % 1500 == 1499 {
            j.sync().unwrap();
            let acked = j.stats().acked;
            let got = read_all(&mut j, acked);
            j.ack(got.last().unwrap().seq).unwrap();
            consumed.extend(got);
        }
    }
    let s = j.stats();
    assert!(s.lost > 100 && refused > 0, "{s:?} {refused}");
    check_accounting(&mut j, &consumed, &accepted, refused);
    drop(j);
    // The counters survive a restart.
    let (mut j, rec) = Journal::open(&dir.0, limits).unwrap();
    assert_eq!(rec.cut_bytes, 0, "{rec:?} {s:?} {:?}", j.stats());
    assert_eq!(j.stats().lost, s.lost);
    check_accounting(&mut j, &consumed, &accepted, refused);
}

#[test]
fn a_journal_full_of_critical_records_refuses_and_reports_the_refusals_later() {
    let dir = TempDir::new("full");
    let limits = Limits {
        max_bytes: 1 << 20,
        max_records: 10,
        segment_bytes: 4096,
    };
    let (mut j, _) = Journal::open(&dir.0, limits).unwrap();
    for i in 0..10u64 {
        assert_eq!(j.append(Class::Critical, &payload(i)).unwrap(), i + 1);
    }
    for _ in 0..3 {
        assert!(matches!(j.append(Class::Critical, b"no room"), Err(Error::Full)));
        assert!(matches!(j.append(Class::Normal, b"no room"), Err(Error::Full)));
    }
    assert_eq!(j.stats().lost, 6);
    assert_eq!(j.lost_pending(), 6);
    assert_eq!(j.stats().records, 10);
    drop(j);
    // The refusals are remembered across a restart; an acknowledgement makes room for the
    // report, which comes before the next event.
    let (mut j, _) = Journal::open(&dir.0, limits).unwrap();
    assert_eq!(j.stats().lost, 6);
    assert_eq!(j.lost_pending(), 6);
    j.ack(5).unwrap();
    let seq = j.append(Class::Normal, b"later").unwrap();
    j.sync().unwrap();
    let got = read_all(&mut j, 5);
    let lost: Vec<&Entry> = got.iter().filter(|e| matches!(e.kind, Kind::Lost { .. })).collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(
        lost[0].kind,
        Kind::Lost {
            count: 6,
            first: 11,
            last: 16
        }
    );
    assert!(lost[0].seq < seq);
    assert_eq!(got.last().unwrap().payload, b"later");
    assert_eq!(j.lost_pending(), 0);
    for e in &got[..5] {
        assert_eq!(e.kind, Kind::Event(Class::Critical));
    }
}

#[test]
fn garbage_segment_files_never_panic_and_never_become_records() {
    let mut rng = Rng(7);
    for round in 0..200u64 {
        let dir = TempDir::new("garbage");
        // Sometimes a valid log first, then garbage appended to it or in a later segment.
        let valid = if round % 2 == 0 {
            synced_log(&dir.0, 5).1
        } else {
            Vec::new()
        };
        let len = rng.below(4096) as usize;
        let mut junk = rng.bytes(len);
        if round % 3 == 0 && len > 40 {
            // Plausible-looking lengths and kinds.
            junk[..4].copy_from_slice(&20u32.to_le_bytes());
            junk[16] = (round % 3) as u8;
        }
        let name = if round % 4 == 0 { 1 } else { 1000 + round };
        let path = dir.0.join(format!("{name:020}.seg"));
        let mut bytes = fs::read(&path).unwrap_or_default();
        bytes.extend_from_slice(&junk);
        fs::write(&path, &bytes).unwrap();
        if round % 5 == 0 {
            let n = rng.below(200) as usize;
            fs::write(dir.0.join("cursor"), rng.bytes(n)).unwrap();
        }
        let (mut j, _) = Journal::open(&dir.0, ROOMY).unwrap();
        let got = read_all(&mut j, 0);
        assert_eq!(got.len(), valid.len(), "round {round}");
        for (e, p) in got.iter().zip(&valid) {
            assert_eq!(&e.payload, p);
        }
        let seq = j.append(Class::Critical, b"x").unwrap();
        assert!(seq > valid.len() as u64);
    }
}

const FSIZE_DIR: &str = "GATELET_JOURNAL_FSIZE_DIR";

/// The child of `a_full_disk_loses_nothing_accepted`: appends under a file-size limit (the
/// kernel refuses writes past it with EFBIG, part-way through a record, as a full disk does
/// with ENOSPC) and prints how many records were accepted.
#[test]
#[ignore = "run by a_full_disk_loses_nothing_accepted, under a file-size limit"]
fn append_until_the_file_size_limit() {
    let Some(dir) = std::env::var_os(FSIZE_DIR) else {
        return;
    };
    let (mut j, _) = Journal::open(Path::new(&dir), ROOMY).unwrap();
    let mut accepted = 0;
    let err = loop {
        match j.append(Class::Critical, &payload(accepted)) {
            Ok(seq) => assert_eq!(seq, accepted + 1),
            Err(e) => break e,
        }
        accepted += 1;
        assert!(accepted < 100_000, "no limit");
    };
    assert!(matches!(err, Error::Io(_)), "{err}");
    // Still refused, nothing counted as lost, the journal still usable.
    assert!(matches!(j.append(Class::Normal, &[b'x'; 300]), Err(Error::Io(_))));
    assert_eq!(j.stats().lost, 0);
    assert_eq!(j.sync().unwrap(), accepted);
    assert_eq!(read_all(&mut j, 0).len() as u64, accepted);
    println!("accepted {accepted}");
}

#[test]
fn a_full_disk_loses_nothing_accepted() {
    let dir = TempDir::new("fsize");
    // SIGXFSZ ignored (inherited across exec), then at most 16 blocks per file.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 16 && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "append_until_the_file_size_limit",
            "--ignored",
            "--nocapture",
        ])
        .env(FSIZE_DIR, &dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("accepted "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .parse()
        .unwrap();
    assert!(accepted > 10, "{accepted}");
    // The partial record was cut off by the journal itself: nothing left to recover.
    let (mut j, rec) = Journal::open(&dir.0, ROOMY).unwrap();
    assert_eq!(rec.cut_bytes, 0);
    assert_eq!(rec.records, accepted);
    let got = read_all(&mut j, 0);
    assert_eq!(got.len() as u64, accepted);
    for e in &got {
        assert_eq!(e.payload, payload(e.seq - 1));
    }
}

#[test]
fn a_torn_cursor_falls_back_to_an_earlier_acknowledgement() {
    let src = TempDir::new("cursor-src");
    let mut j = normal_log(&src.0, ROOMY, 50);
    for upto in [10, 20, 30] {
        j.ack(upto).unwrap();
    }
    drop(j);
    let cursor = fs::read(src.0.join("cursor")).unwrap();
    for cut in 0..=cursor.len() {
        let dir = TempDir::new("cursor");
        copy_dir(&src.0, &dir.0);
        fs::write(dir.0.join("cursor"), &cursor[..cut]).unwrap();
        let (mut j, _) = Journal::open(&dir.0, ROOMY).unwrap();
        let acked = j.stats().acked;
        assert!([0, 10, 20, 30].contains(&acked), "cut {cut}: {acked}");
        assert_eq!(acked == 30, cut == cursor.len(), "cut {cut}");
        // Redelivery from there, nothing skipped.
        assert_eq!(read_all(&mut j, acked).len() as u64, 50 - acked);
        j.ack(40).unwrap();
        drop(j);
        let (j, _) = Journal::open(&dir.0, ROOMY).unwrap();
        assert_eq!(j.stats().acked, 40, "cut {cut}");
    }
}

#[test]
fn the_cursor_file_stays_small_across_many_acknowledgements() {
    let dir = TempDir::new("cursor-rotate");
    let mut j = normal_log(&dir.0, ROOMY, 300);
    for upto in 1..=300 {
        j.ack(upto).unwrap();
        assert!(fs::metadata(dir.0.join("cursor")).unwrap().len() <= 4096);
    }
    assert!(!dir.0.join("cursor.tmp").exists());
    drop(j);
    let (j, _) = Journal::open(&dir.0, ROOMY).unwrap();
    assert_eq!(j.stats().acked, 300);
    assert_eq!(j.stats().next_seq, 301);
}

#[test]
fn a_journal_is_open_once_at_a_time() {
    let dir = TempDir::new("lock");
    let (j, _) = Journal::open(&dir.0, ROOMY).unwrap();
    match Journal::open(&dir.0, ROOMY) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
        other => panic!("{other:?}"),
    }
    drop(j);
    Journal::open(&dir.0, ROOMY).unwrap();
}

#[test]
fn compaction_writes_a_new_file_with_every_critical_record_in_order() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("compact");
    let limits = Limits {
        max_bytes: 600 * 1024,
        max_records: 1 << 20,
        segment_bytes: 256 * 1024,
    };
    let (mut j, _) = Journal::open(&dir.0, limits).unwrap();
    let mut accepted = BTreeMap::new();
    let mut sent = BTreeMap::new();
    let mut i = 0;
    // A first segment of which half the records (more than 64 KiB of them) are critical.
    while segment_files(&dir.0).len() < 2 {
        let class = if i % 2 == 0 { Class::Critical } else { Class::Normal };
        let seq = j.append(class, &payload(i)).unwrap();
        accepted.insert(seq, class);
        sent.insert(seq, payload(i));
        i += 1;
    }
    let first = segment_files(&dir.0)[0].clone();
    let inode = fs::metadata(&first).unwrap().ino();
    while j.stats().lost == 0 {
        let seq = j.append(Class::Normal, &payload(i)).unwrap();
        accepted.insert(seq, Class::Normal);
        sent.insert(seq, payload(i));
        i += 1;
    }
    // Same name, new file: replaced, not rewritten.
    assert_ne!(fs::metadata(&first).unwrap().ino(), inode);
    let names: Vec<_> = fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().ends_with(".tmp")),
        "{names:?}"
    );
    check_accounting(&mut j, &[], &accepted, 0);
    let got = read_all(&mut j, 0);
    for e in &got {
        if let Kind::Event(_) = e.kind {
            assert_eq!(e.payload, sent[&e.seq]);
        }
    }
    drop(j);
    let (mut j, rec) = Journal::open(&dir.0, limits).unwrap();
    assert_eq!(rec.cut_bytes, 0);
    assert_eq!(read_all(&mut j, 0), got);
}

#[test]
fn random_damage_anywhere_yields_only_records_that_were_written() {
    let src = TempDir::new("damage-src");
    let limits = Limits {
        segment_bytes: 1024,
        ..ROOMY
    };
    drop(normal_log(&src.0, limits, 120));
    let mut rng = Rng(0xdead_beef);
    for round in 0..150 {
        let dir = TempDir::new("damage");
        copy_dir(&src.0, &dir.0);
        let mut files: Vec<PathBuf> = segment_files(&dir.0);
        files.push(dir.0.join("cursor"));
        for _ in 0..1 + rng.below(4) {
            let which = rng.below(files.len() as u64) as usize;
            let f = &files[which];
            let mut bytes = fs::read(f).unwrap();
            if bytes.is_empty() {
                continue;
            }
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes.truncate(at),
                _ => {
                    let n = 1 + rng.below(64) as usize;
                    let junk = rng.bytes(n);
                    bytes.splice(at..at, junk);
                }
            }
            fs::write(f, &bytes).unwrap();
        }
        let (mut j, _) = Journal::open(&dir.0, limits).unwrap();
        let got = read_all(&mut j, 0);
        assert!(got.windows(2).all(|w| w[0].seq < w[1].seq), "round {round}");
        for e in &got {
            assert_eq!(e.kind, Kind::Event(Class::Normal), "round {round}");
            assert_eq!(e.payload, payload(e.seq - 1), "round {round} seq {}", e.seq);
        }
        // And it goes on: a new record is numbered above everything it kept.
        let seq = j.append(Class::Critical, b"after").unwrap();
        assert!(seq > got.last().map_or(0, |e| e.seq));
    }
}
