#!/usr/bin/env bash
# Instructions per proxied request, repeatable on a noisy machine: gatelet (release build) runs
# under `valgrind --tool=callgrind` twice, serving N and then 2N keep-alive GETs of an endpoint
# that forwards two client headers to a local backend; (Ir(2N) - Ir(N)) / N cancels start-up
# and shutdown. Usage: scripts/callgrind.sh [N]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
command -v valgrind >/dev/null || { sudo=; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get install -y -qq valgrind >/dev/null; }
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

python3 scripts/json_backend.py "$work/backend.port" &
for _ in $(seq 100); do [ -s "$work/backend.port" ] && break; sleep 0.1; done
bport=$(cat "$work/backend.port")

# The client and the count are scripts/bench.py's callgrind(), as the benchmark measures.
python3 - "$work" "$bport" "$N" <<'PY'
import json, os, sys
sys.path.insert(0, "scripts")
sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
import bench
bench.WORK, bport, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
req = b"GET /vehicle/7 HTTP/1.1\r\nHost: bus\r\nX-Request-Id: abc-123\r\nAuthorization: Bearer t\r\n\r\n"


def measure(n):
    port = bench.free_port()
    conf = os.path.join(bench.WORK, "krakend.json")
    with open(conf, "w") as f:
        json.dump({"version": 3, "listen_ip": "127.0.0.1", "port": port, "endpoints": [
            {"endpoint": "/vehicle/{id}", "input_headers": ["X-Request-Id", "Authorization"],
             "backend": [{"host": [f"http://127.0.0.1:{bport}"], "url_pattern": "/status/{id}",
                          "allow": ["fuel", "tyres.fl"]}]}]}, f)
    return bench.callgrind([bench.GATELET, "run", "-c", conf], port, req, n, "gatelet",
                           dict(os.environ, RUST_LOG="error"))


a, b = measure(n), measure(2 * n)
print(f"instructions per proxied request: {(b - a) // n} (Ir {a} for {n} requests, {b} for {2 * n})")
PY
