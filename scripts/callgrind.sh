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

python3 - "$work/backend.port" <<'PY' &
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        b = b'{"fuel":71,"speed":42,"tyres":{"fl":32.1,"fr":31.9}}'
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
for _ in $(seq 100); do [ -s "$work/backend.port" ] && break; sleep 0.1; done
bport=$(cat "$work/backend.port")

measure() {
    local n=$1 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$work/krakend.json" <<JSON
{"version": 3, "listen_ip": "127.0.0.1", "port": $port,
 "endpoints": [{"endpoint": "/vehicle/{id}", "input_headers": ["X-Request-Id", "Authorization"],
   "backend": [{"host": ["http://127.0.0.1:$bport"], "url_pattern": "/status/{id}", "allow": ["fuel", "tyres.fl"]}]}]}
JSON
    RUST_LOG=error valgrind --tool=callgrind --callgrind-out-file="$work/cg.$n" "${CARGO_TARGET_DIR:-target}"/release/gatelet run -c "$work/krakend.json" 2>/dev/null &
    local vpid=$!
    python3 - "$port" "$n" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(300):
    try:
        s = socket.create_connection(("127.0.0.1", port)); break
    except OSError:
        time.sleep(0.1)
req = b"GET /vehicle/7 HTTP/1.1\r\nHost: bus\r\nX-Request-Id: abc-123\r\nAuthorization: Bearer t\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            head = buf[:i].decode()
            length = int([l.split(":")[1] for l in head.split("\r\n") if l.lower().startswith("content-length")][0])
            if len(buf) >= i + 4 + length:
                buf = buf[i + 4 + length:]
                break
        buf += s.recv(65536)
s.close()
PY
    kill -TERM "$vpid"; wait "$vpid" || true
    awk '/^summary:/ {print $2}' "$work/cg.$n"
}
a=$(measure "$N")
b=$(measure $((2 * N)))
echo "instructions per proxied request: $(( (b - a) / N )) (Ir $a for $N requests, $b for $((2 * N)))"
