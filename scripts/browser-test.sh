#!/usr/bin/env bash
# The fleet dashboard in a real headless browser: a central gatelet (this tree's binary) with
# simulated buses on loopback (scripts/sim-buses.py; one bus per port, one more that refuses),
# driven by Debian's chromium through playwright-core (scripts/dashboard.test.mjs). It checks
# the counts, rows, reasons, sorting, positions and the token prompt, takes one bus down and
# times its row turning unreachable (must be within two refresh periods), stops the central
# and expects the banner, and saves docs/dashboard.png. Installs what it lacks: chromium (apt)
# and playwright-core (npm, into .browser-test/, which git ignores). Loopback only, bounded.
#
#   scripts/browser-test.sh           run the test (CI runs this)
#   scripts/browser-test.sh --serve   serve the same demo fleet and print the page's address
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT=1.65.1
SERVE=${1:-}
root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ -z "$SERVE" ]; then
    # Debian's packages; node only when there is none (the image's own node may not be Debian's).
    want=()
    [ -x /usr/bin/chromium ] || want+=(chromium)
    command -v npm >/dev/null || want+=(nodejs npm)
    if [ ${#want[@]} -gt 0 ]; then
        root apt-get update -qq
        root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
    fi
    if [ ! -f .browser-test/node_modules/playwright-core/package.json ]; then
        mkdir -p .browser-test
        npm install --prefix .browser-test --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT"
    fi
fi
cargo build --quiet
BIN=${CARGO_TARGET_DIR:-target}/debug/gatelet

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; return 1; }

# The fleet: bus-2 runs alone so that the test can take it down; bus-8 is a port nobody serves.
SECONDS_UP=$([ -n "$SERVE" ] && echo 3600 || echo 300)
python3 scripts/sim-buses.py --seconds "$SECONDS_UP" --out "$work/buses.json" \
    bus-1:ok bus-3:ok bus-4:stale bus-5:ok bus-6:down bus-7:circuit bus-10:ok &
pids+=($!)
python3 scripts/sim-buses.py --seconds "$SECONDS_UP" --out "$work/victim.json" bus-2:ok &
victim=$!
pids+=("$victim")
wait_file "$work/buses.json"
wait_file "$work/victim.json"
TOKEN=depot-wall-$RANDOM$RANDOM
PORT=$(free_port)
python3 - "$work" "$(free_port)" "$PORT" "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" > "$work/central.json" <<'PY'
import json, sys
work, refused, port, digest = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ports = {**json.load(open(f"{work}/buses.json")), **json.load(open(f"{work}/victim.json")), "bus-8": int(refused)}
members = [{"id": bus, "host": f"http://127.0.0.1:{ports[bus]}"} for bus in sorted(ports, key=lambda b: int(b[4:]))]
print(json.dumps({"version": 3, "name": "central", "listen_ip": "127.0.0.1", "port": port,
    "extra_config": {
        "gatelet/fleet": {"members": members, "timeout": "1s"},
        "gatelet/dashboard": {"title": "Depot North: fleet", "refresh": "2s", "position_endpoint": "/fleet/positions",
                              "events_endpoint": "/inbox"},
        "gatelet/inbox": {"dir": f"{work}/inbox"},
        "gatelet/api-keys": {"keys": [{"name": "depot-wall", "sha256": digest, "roles": ["read"]}]}},
    "endpoints": [{"endpoint": "/fleet/positions", "timeout": "2s",
        "extra_config": {"gatelet/api-keys": {"roles": ["read"]}},
        "backend": [{"url_pattern": "/position", "allow": ["lat", "lon"], "extra_config": {"gatelet/fleet": {}}}]},
        {"endpoint": "/inbox", "method": "POST", "backend": [{"extra_config": {"gatelet/inbox": {}}}]},
        {"endpoint": "/inbox", "backend": [{"extra_config": {"gatelet/inbox": {}}}]}]}, indent=1))
PY
RUST_LOG=warn "$BIN" run -c "$work/central.json" 2> "$work/central.log" &
central=$!
pids+=("$central")
BASE="http://127.0.0.1:$PORT"
fetch() { python3 -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=5).read())' "$1"; }
for _ in $(seq 100); do fetch "$BASE/__health" >/dev/null 2>&1 && break; sleep 0.1; done
# Events as bus-3's outbox would deliver them: a normal one, a critical one, a lost record.
python3 - "$BASE/inbox" <<'PY'
import json, sys, time, urllib.request
now = int(time.time() * 1000)
batch = {"bus": "bus-3", "epoch": "5eed", "events": [
    {"id": 1, "ts": now - 2000, "critical": False, "event": {"type": "count", "in": 3}},
    {"id": 2, "ts": now - 1000, "critical": True, "event": {"type": "door_alarm", "door": 2}},
    {"id": 3, "lost": {"count": 4, "first": 10, "last": 13}}]}
req = urllib.request.Request(sys.argv[1], json.dumps(batch).encode(), {"Content-Type": "application/json"})
assert json.load(urllib.request.urlopen(req, timeout=5)) == {"acked": 3}
PY
if [ -n "$SERVE" ]; then
    echo "dashboard: $BASE/__dashboard  (token for the positions: $TOKEN; Ctrl-C stops)"
    wait "$central"
    exit
fi
size=$(fetch "$BASE/__dashboard" | wc -c)
echo "dashboard page: $size bytes"
started=$(date +%s%N)
BASE=$BASE TOKEN=$TOKEN REFRESH_MS=2000 VICTIM_PID=$victim CENTRAL_PID=$central \
    node scripts/dashboard.test.mjs
echo "browser test took $(( ($(date +%s%N) - started) / 1000000 )) ms"
