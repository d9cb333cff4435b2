#!/usr/bin/env bash
# Soak test: gatelet under moderate mixed traffic for DURATION seconds (default 600),
# RSS and open descriptors sampled every 10 s; fails if gatelet dies, its RSS drifts, its
# descriptors do not return to idle, or an answer is not the expected one. Installs nginx (the
# backend) from Debian when missing, builds the release binary and runs scripts/soak.py.
# Loopback only; gatelet, nginx and the driver share one core (SOAK_CPU).
# Usage: scripts/soak.sh [DURATION]   (or SOAK_SECONDS=60 scripts/soak.sh)
# Tunables (environment): SOAK_RATE (400 requests/s), SOAK_LANES (8), SOAK_CPU (1),
# SOAK_MAX_DRIFT_KIB (1024), SOAK_MAX_ERRORS (0), KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECONDS=${1:-${SOAK_SECONDS:-600}}
case $SOAK_SECONDS in '' | *[!0-9]*) echo "usage: $0 [DURATION in seconds]" >&2; exit 2 ;; esac
missing=()
for tool in nginx:nginx-light taskset:util-linux; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export SOAK_CPU=${SOAK_CPU:-$(($(nproc) > 1 ? 1 : 0))}
cargo build --release --quiet
exec python3 scripts/soak.py
