#!/usr/bin/env bash
# gatelet's tests built for an ARM target and run under qemu-user (scripts/cross.sh sets up the
# toolchain and the runner). Prints every test it skips and why, then one closing line:
# `TARGET: N passed, N failed, N skipped`. Exits non-zero if a test failed. The whole output of
# the test run is kept in target/cross-test-TARGET.log.
#
#   scripts/cross-test.sh [--smoke] [--binfmt] [TARGET]     TARGET: armv7 (default), aarch64, armv5te
#
# --smoke    only the suites CI runs: gateway, sensors (pty serial included), security (auth),
#            ratelimit, fleet and tls; without it, every test target (the whole `cargo test`)
# --binfmt   also run the tests that start the gatelet binary as a child process: registers
#            qemu for ARM executables with the kernel's binfmt_misc for the duration of the run
#            (root only; removed again at exit). Without it they are skipped, unless an ARM
#            entry is already registered.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke= binfmt=
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1 ;;
        --binfmt) binfmt=1 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
target=${1:-armv7}
envs=$(scripts/cross.sh --env "$target")
eval "$envs"
triple=$(sed -n 's/^export CARGO_TARGET_\(.*\)_RUNNER=.*/\1/p' <<<"$envs")
runner_var=CARGO_TARGET_${triple}_RUNNER
read -r qemu _ cpu _ prefix <<<"${!runner_var}"
arch=$(basename "$qemu")   # qemu-arm or qemu-aarch64
# Children (the gatelet binary under binfmt_misc) get qemu's CPU and library prefix this way.
export QEMU_CPU=$cpu QEMU_LD_PREFIX=$prefix

skips=()
skip() {
    local reason=$1
    shift
    echo "skipped: $* -- $reason"
    for t in "$@"; do skips+=(--skip "$t"); done
}

binfmt_entry=/proc/sys/fs/binfmt_misc/gatelet-$arch
unregister() { [ ! -e "$binfmt_entry" ] || echo -1 >"$binfmt_entry"; }
if [ -n "$binfmt" ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    unregister
    if [ "$arch" = qemu-arm ]; then
        magic='\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
    else
        magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    fi
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    # F: the kernel opens qemu now, so the entry works whatever the child's root or PATH.
    echo ":gatelet-$arch:M::$magic:$mask:$qemu:F" >/proc/sys/fs/binfmt_misc/register
fi
if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/*"${arch#qemu-}"*; then
    skip "starts the ARM gatelet binary as a child process, and the kernel has no binfmt_misc entry for ARM executables here (--binfmt registers one)" \
        max_connections_is_checked version_prints_the_package_version every_shipped_config_passes_check \
        check_prints_every_error_with_position_and_exits_1 a_config_path_to_an_endless_device_is_refused_not_read_forever \
        connections_beyond_max_connections_wait_unaccepted_while_established_ones_are_served \
        ten_thousand_connections_leave_no_memory_or_descriptors_behind \
        ready_then_watchdog_pings_at_half_the_interval sigterm_lets_the_request_in_flight_finish_then_exits_cleanly \
        under_journald_lines_carry_priorities_and_the_access_log_is_opt_in \
        sighup_swaps_in_a_valid_config_and_keeps_the_old_one_on_errors \
        a_notify_socket_nobody_reads_stalls_neither_serving_nor_sigterm
fi
skip "counts the threads of the gatelet process, and under qemu-user that process also holds qemu's own RCU thread (2, not 1)" \
    run_serves_proxied_sensor_and_fleet_traffic_and_a_reload_on_exactly_one_thread
case "$triple" in
    ARMV*) skip "asserts the 64-bit sizes of the rate-limit table's entries that the module doc quotes; on 32-bit ARM Entry<IpAddr> is 40 bytes, not 48" \
        limiter::table::tests::entry_sizes ;;
esac

if [ -n "$smoke" ]; then
    selection=(--test gateway --test sensors --test security --test ratelimit --test fleet --test tls)
else
    selection=()
fi
# Line numbers in backtraces, without full debug info: test binaries link faster.
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}
log=target/cross-test-$target.log
trap 'unregister 2>/dev/null || true' EXIT
start=$SECONDS
scripts/cross.sh --cargo "$target" test --no-run "${selection[@]}" 2>&1 | grep -v '^ *\(Compiling\|Executable\)' || true
built=$((SECONDS - start))
scripts/cross.sh --cargo "$target" test --no-fail-fast "${selection[@]}" -- "${skips[@]}" 2>&1 | tee "$log" |
    grep -E '^(test result|     Running|failures:|    [a-z_:]+$|---- )' || true
ran=$((SECONDS - start - built))
python3 - "$log" "$target" "$built" "$ran" <<'PY'
import re, sys
log, target, built, ran = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = f = s = 0
for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; \d+ ignored; \d+ measured; (\d+) filtered out", open(log).read()):
    p, f, s = p + int(m[1]), f + int(m[2]), s + int(m[3])
print(f"build {built} s, run {ran} s under qemu")
print(f"{target}: {p} passed, {f} failed, {s} skipped")
sys.exit(1 if f or p == 0 else 0)
PY
