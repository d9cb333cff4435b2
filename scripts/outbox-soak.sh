#!/usr/bin/env bash
# The outbox's crash and 4G tests at soak length: the bus SIGKILLed CYCLES times (default
# 10000) while it takes events and delivers, and the central down for DOWN_SECS (default 300)
# in the middle of the 4G faults. Every event answered 201 must reach the central exactly once,
# in order. Release build; loopback only. Usage: scripts/outbox-soak.sh [CYCLES] [DOWN_SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
export GATELET_CRASH_CYCLES=${1:-10000} GATELET_CENTRAL_DOWN_SECS=${2:-300}
exec cargo test --release --test outbox -- --nocapture \
    sigkill_at_random_moments a_4g_link_resets
