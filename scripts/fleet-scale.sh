#!/usr/bin/env bash
# The central office at scale: N simulated buses (default 1000; 10% of them hang: they accept
# and never answer) served by one asyncio process on loopback ports, a central gatelet with
# all of them as fleet members, and GET /__fleet/health timed a few rounds. Prints wall time per
# round against the fleet timeout, peak RSS, and CPU time per member. Loopback only, bounded.
# Usage: scripts/fleet-scale.sh [N] [max_in_flight]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
INFLIGHT=${2:-256}
TIMEOUT_MS=2000
cargo build --release --quiet
BIN=target/release/gatelet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 16384 2>/dev/null || true

python3 - "$N" "$work/ports.json" <<'PY' &
import asyncio, json, sys
n, out = int(sys.argv[1]), sys.argv[2]
async def healthy(reader, writer):
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            body = b'{"status":"ok","agents":{}}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except Exception:
        writer.close()
async def hanging(reader, writer):
    await asyncio.sleep(3600)
async def main():
    ports = []
    for i in range(n):
        handler = hanging if i % 10 == 9 else healthy
        server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=64)
        ports.append(server.sockets[0].getsockname()[1])
    json.dump(ports, open(out + ".tmp", "w"))
    import os; os.replace(out + ".tmp", out)
    await asyncio.sleep(600)
asyncio.run(main())
PY
for _ in $(seq 300); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
python3 - "$work/ports.json" "$TIMEOUT_MS" "$INFLIGHT" > "$work/central.json" <<'PY'
import json, sys
ports = json.load(open(sys.argv[1]))
members = [{"id": f"bus-{i}", "host": f"http://127.0.0.1:{p}"} for i, p in enumerate(ports)]
print(json.dumps({"version": 3, "listen_ip": "127.0.0.1", "port": 0,
  "extra_config": {"gatelet/fleet": {"members": members, "timeout": f"{sys.argv[2]}ms", "max_in_flight": int(sys.argv[3])}},
  "endpoints": []}))
PY
RUST_LOG=warn "$BIN" run -c "$work/central.json" 2> "$work/gatelet.log" &
gpid=$!
# Logs are at warn (the per-member warnings of a partial answer are the point of the test):
# read the bound port from /proc rather than from the "listening on" line.
port=""
for _ in $(seq 100); do
    port=$(python3 -c "
import os
inodes = set()
for fd in os.listdir('/proc/$gpid/fd'):
    try:
        link = os.readlink(f'/proc/$gpid/fd/{fd}')
    except OSError:
        continue
    if link.startswith('socket:['): inodes.add(link[8:-1])
for line in open('/proc/net/tcp').readlines()[1:]:
    f = line.split()
    if f[3] == '0A' and f[9] in inodes: print(int(f[1].split(':')[1], 16)); break
") && [ -n "$port" ] && break
    sleep 0.1
done
ticks() { awk '{print $14 + $15}' /proc/$gpid/stat; }
before=$(ticks)
for round in 1 2 3; do
    t=$(curl -s -o "$work/health.json" -w '%{time_total}' "http://127.0.0.1:$port/__fleet/health")
    counts=$(python3 -c "import json; print(json.load(open('$work/health.json'))['counts'])")
    echo "round $round: /__fleet/health in ${t}s (fleet timeout $((TIMEOUT_MS / 1000)).$(( TIMEOUT_MS % 1000 / 100 ))s), counts $counts"
done
after=$(ticks)
hz=$(getconf CLK_TCK)
python3 -c "print(f'CPU per member per round: {($after - $before) / $hz / 3 / $N * 1e6:.0f} µs')"
echo "peak RSS: $(awk '/^VmHWM:/ {print $2}' /proc/$gpid/status) KiB with $N members, max_in_flight $INFLIGHT"
