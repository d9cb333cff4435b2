#!/usr/bin/env bash
# Fuzzes gatelet with cargo-fuzz (libFuzzer), one target at a time, one process each (these
# machines have 2 shared cores): scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 60
#   TARGET              config sensor merge jwt http (default: all, in that order)
# Installs cargo-fuzz if missing (needs the nightly toolchain), builds the targets once, then
# per target prints seconds, CPU seconds, executions and crashes, and appends one row to
# fuzz/RESULTS.md. Crashing inputs land in fuzz/artifacts/<target>/ (replay one with
# `cargo +nightly fuzz run <target> <file>`); the corpus grows in fuzz/corpus/<target>/.
# Each target runs in a network namespace of its own with only loopback (unshare -n), so a
# fuzzed config naming a host name cannot send DNS queries anywhere; without unshare it
# refuses to run unless GATELET_FUZZ_ALLOW_NET=1.
# Tunables (environment): FUZZ_BUILD_JOBS (1), FUZZ_TIMEOUT (10 s per input before libFuzzer
# reports a hang), FUZZ_RSS_MB (2048).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config sensor merge jwt http)

rustup toolchain list | grep -q '^nightly' || {
    echo "cargo fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

isolate=()
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    isolate=(unshare -n sh -c 'ip link set lo up && exec "$@"' isolated)
elif [ "${GATELET_FUZZ_ALLOW_NET:-0}" != 1 ]; then
    echo "cannot make a network namespace (needs root and unshare): fuzzed configs could" >&2
    echo "resolve host names through the system resolver. GATELET_FUZZ_ALLOW_NET=1 to run anyway." >&2
    exit 2
fi

(cd fuzz && CARGO_BUILD_JOBS=${FUZZ_BUILD_JOBS:-1} cargo +nightly fuzz build -O)

# Seeds beside the generated corpus: committed ones, the example and fixture configs, and the
# malformed-request vectors of tests/vectors (unescaped: their files are escaped text).
vectors=fuzz/corpus/http-vectors
if [ ! -d "$vectors" ] && command -v python3 >/dev/null; then
    mkdir -p "$vectors"
    python3 - "$vectors" tests/vectors/*.vec <<'EOF'
import re, sys
out = sys.argv[1]
for path in sys.argv[2:]:
    lines = open(path, encoding="utf-8").read().splitlines()
    body = "".join(l for l in lines if not l.startswith("#") and not l.startswith("expect:"))
    raw = re.sub(rb"\\(x[0-9a-fA-F]{2}|.)", lambda m: {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"\\": b"\\"}.get(
        m.group(1), bytes([int(m.group(1)[1:], 16)]) if m.group(1)[:1] == b"x" else m.group(0)), body.encode())
    open(f"{out}/{path.rsplit('/', 1)[-1][:-4]}", "wb").write(raw[:65536])
EOF
fi
seeds() {
    case $1 in
        config) echo config tests/config/valid tests/config/invalid ;;
        http) echo fuzz/seeds/http "$vectors" ;;
        *) echo "fuzz/seeds/$1" ;;
    esac
}
dict() {
    case $1 in
        config | merge) echo fuzz/dict/config.dict ;;
        http) echo fuzz/dict/http.dict ;;
        sensor) echo fuzz/dict/sensor.dict ;;
        *) ;;
    esac
}

results=fuzz/RESULTS.md
table='| date (UTC) | commit | target | s | CPU s | execs | execs/s | corpus | crashes |
|---|---|---|---|---|---|---|---|---|'
[ -f "$results" ] || cat >"$results" <<EOF
# Fuzzing runs

One row per target per \`scripts/fuzz.sh\` run (libFuzzer, one process, \`-O\`). CPU s is user +
system time of the fuzzer process; execs is libFuzzer's count of inputs run; corpus is the
inputs kept (committed seeds not counted).

$table
EOF
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src fuzz 2>/dev/null || echo +)
mkdir -p fuzz/logs
failed=0
summary=()
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "no fuzz target $t" >&2; exit 2; }
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=fuzz/logs/$t.log
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    existing=()
    for d in $(seeds "$t"); do [ -d "$d" ] && existing+=("$root/$d"); done
    d=$(dict "$t")
    echo "== $t: ${seconds}s" >&2
    # `time` (the bash keyword) reports the CPU time of the whole child tree.
    TIMEFORMAT='%R %U %S'
    set +e
    { time "${isolate[@]}" "fuzz/target/x86_64-unknown-linux-gnu/release/$t" \
        -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -print_final_stats=1 -artifact_prefix="$root/fuzz/artifacts/$t/" ${d:+-dict="$root/$d"} \
        "$root/fuzz/corpus/$t" "${existing[@]}" >"$log" 2>&1; } 2>fuzz/logs/$t.time
    rc=$?
    set -e
    read -r real user sys <fuzz/logs/$t.time
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | sort -n | tail -1)
    execs=${execs:-0}
    corpus=$(ls "fuzz/corpus/$t" | wc -l)
    crashes=$(($(ls "fuzz/artifacts/$t" | wc -l) - before))
    rate=$(awk -v e="$execs" -v r="$real" 'BEGIN { printf "%.0f", (r > 0 ? e / r : 0) }')
    found=none
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed=1
        found="$crashes: $(ls -t "fuzz/artifacts/$t" | head -"$((crashes > 0 ? crashes : 1))" | tr '\n' ' ')"
        grep -m1 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" >&2 || true
        echo "   $t: exit $rc; see $log" >&2
    fi
    row="| $(date -u +%F) | $commit | $t | ${real%.*} | $cpu | $execs | $rate | $corpus | $found |"
    echo "$row" >>"$results"
    summary+=("$row")
    echo "   $t: ${real%.*} s, $cpu CPU s, $execs execs ($rate/s), corpus $corpus, crashes: $found" >&2
done
echo
echo "$table"
printf '%s\n' "${summary[@]}"
exit $failed
