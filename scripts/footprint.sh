#!/usr/bin/env bash
# Measures gatelet's footprint: release binary size, idle RSS, and peak RSS while N client
# connections (default 1000; the config raises max_connections above it) each hold a keep-alive connection and proxy one request to a
# local backend. Loopback only; bounded in count and time. Usage: scripts/footprint.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
cargo build --release --quiet
BIN=target/release/gatelet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
ulimit -n 8192 2>/dev/null || true

# A backend on loopback: python's threading HTTP server answering a small JSON object.
python3 scripts/json_backend.py "$work/backend.port" --short --lifetime 120 &
for _ in $(seq 100); do [ -s "$work/backend.port" ] && break; sleep 0.1; done
bport=$(cat "$work/backend.port")
cat > "$work/krakend.json" <<JSON
{"version": 3, "listen_ip": "127.0.0.1", "port": 0, "timeout": "10s",
 "extra_config": {"gatelet/server": {"max_connections": 4096}},
 "endpoints": [{"endpoint": "/status", "backend": [{"host": ["http://127.0.0.1:$bport"], "url_pattern": "/"}]}]}
JSON
clients() {
python3 - "$1" "$N" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1); n = int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.create_connection((host, int(port)), timeout=20)
    s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
    conns.append(s)
ok = 0
for s in conns:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    ok += data.startswith(b"HTTP/1.1 200")
print(f"{ok}/{n} requests answered 200 over {n} open keep-alive connections")
for s in conns: s.close()
PY

}
RUST_LOG=info "$BIN" run -c "$work/krakend.json" 2> "$work/gatelet.log" &
gpid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/gatelet.log" && break; sleep 0.1; done
addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$work/gatelet.log" | head -1)
rss() { awk "/^$1:/ {print \$2}" /proc/$gpid/status; }
idle=$(rss VmRSS)

clients "$addr"
peak=$(rss VmHWM)
threads=$(awk '/^Threads:/ {print $2}' /proc/$gpid/status)
size=$(stat -c %s "$BIN")
echo "binary size:        $((size / 1024)) KiB ($BIN, stripped release)"
echo "idle RSS:           ${idle} KiB"
echo "peak RSS, $N conns: ${peak} KiB"
echo "threads:            ${threads}"

# The peer, same backend, same clients, same run: nginx as a reverse proxy, one process
# (master_process off), upstream keep-alive. Installed from Debian when missing.
command -v nginx >/dev/null || apt-get install -y -q nginx-light >/dev/null 2>&1 || true
if command -v nginx >/dev/null; then
    nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$work/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$bport; keepalive 16; }
  server {
    listen 127.0.0.1:$nport;
    location /status { proxy_pass http://backend/; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
    nginx -c "$work/nginx.conf" -p "$work" &
    npid=$!
    for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$nport),1)" 2>/dev/null && break; sleep 0.1; done
    nidle=$(awk '/^VmRSS:/ {print $2}' /proc/$npid/status)
    clients "127.0.0.1:$nport"
    npeak=$(awk '/^VmHWM:/ {print $2}' /proc/$npid/status)
    echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') (peer, 1 process): idle RSS ${nidle} KiB, peak RSS, $N conns: ${npeak} KiB"
    echo "ratio gatelet/nginx: idle $(python3 -c "print(round($idle/$nidle, 2))"), peak $(python3 -c "print(round($peak/$npeak, 2))")"
else
    echo "nginx not available: no peer measured"
fi
