#!/usr/bin/env bash
# One command for the benchmark: installs what it needs (nginx, HAProxy, wrk, valgrind,
# strace, gnuplot from Debian), builds gatelet, and runs scripts/bench.py, which writes BENCHMARKS.md,
# docs/bench.json and docs/bench.png. About 10-12 minutes with the defaults; loopback only.
# Tunables (environment): BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (50,1000),
# BENCH_CALLGRIND_N (2000), BENCH_STRACE_N (10000 requests counted under strace, each round, for
# the system calls per request; 0 leaves them out), KEEP=1 keeps the work directory with every log.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for tool in nginx:nginx-light haproxy:haproxy wrk:wrk valgrind:valgrind strace:strace gnuplot:gnuplot-nox taskset:util-linux; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >/dev/null  # a fresh machine may have no package lists yet
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 cores: gateway and load generator will share one" >&2
cargo build --release --quiet
exec python3 scripts/bench.py
