#!/usr/bin/env bash
# The release binary of an ARM target, as a Pi would run it, under qemu-user with that Pi's CPU
# (armv5te: -cpu arm1176, the Pi Zero's and Pi 1's): --version, `check` on the bus config, the
# demo config's /__health, /system and /demo/{id}, then TLS handshakes from OpenSSL's client, TLS 1.3 with
# both its AES-GCM and ChaCha20 suites and TLS 1.2 with ECDSA and RSA certificates. ring picks
# its code for the CPU at run time (no NEON on an ARM1176); these handshakes are the proof that
# the choice works. Loopback only. Closing line: `TARGET release: N passed, N failed`.
#
#   scripts/pi-release-test.sh [TARGET]      armv5te (default), armv7, aarch64
#   GATELET_BIN=path scripts/pi-release-test.sh TARGET    another binary for that target
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-armv5te}
envs=$(scripts/cross.sh --env "$target")
triple=$(sed -n 's/^export CARGO_TARGET_\(.*\)_RUNNER=.*/\1/p' <<<"$envs" | tr 'A-Z_' 'a-z-')
runner=$(sed -n "s/^export CARGO_TARGET_.*_RUNNER='\(.*\)'/\1/p" <<<"$envs")
bin=${GATELET_BIN:-target/$triple/release/gatelet}
[ -x "$bin" ] || scripts/cross.sh "$target"
work=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts the binary under qemu on CONFIG and polls (deadline 60 s) until PORT accepts.
start() {
    local config=$1 port=$2 deadline=$((SECONDS + 60))
    # shellcheck disable=SC2086 # $runner is qemu and its options
    $runner "$bin" run -c "$config" 2>"$work/gatelet.log" &
    pid=$!
    until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/gatelet.log"; return 1; }
        [ $SECONDS -lt $deadline ] || { echo "port $port not open after 60 s"; return 1; }
        sleep 0.2
    done
}
stop() { kill "$pid" && wait "$pid" 2>/dev/null || true; pid=; }

# shellcheck disable=SC2086
if v=$($runner "$bin" --version) && [ "$v" = "gatelet $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" ]; then
    pass "--version: $v"
else fail "--version"; fi
# shellcheck disable=SC2086
if $runner "$bin" check -c config/bus.json >/dev/null; then pass "check -c config/bus.json"; else fail "check -c config/bus.json"; fi

# The demo config (config/default.json, also embedded in the binary) on a free port: sensors on
# /proc, and /demo/{id} aggregating two requests the gateway proxies to itself.
port=$(free_port)
sed "s/8080/$port/g" config/default.json >"$work/plain.json"
if start "$work/plain.json" "$port"; then
    h=$(curl -s --max-time 20 "http://127.0.0.1:$port/__health")
    if grep -q '"status":"ok"' <<<"$h"; then pass "GET /__health"; else fail "GET /__health: $h"; fi
    s=$(curl -s --max-time 20 "http://127.0.0.1:$port/system")
    if grep -q '"MemTotal"' <<<"$s"; then pass "GET /system (file sensors on /proc)"; else fail "GET /system: $s"; fi
    d=$(curl -s --max-time 20 "http://127.0.0.1:$port/demo/7?q=hello")
    if grep -q '"asked_for":"/__echo/bus/7?q=hello"' <<<"$d"; then pass "GET /demo/7 (two proxied backends merged)"; else fail "GET /demo/7: $d"; fi
    stop
else
    fail "start on config/default.json"
fi

# TLS: one ECDSA P-256 and one RSA 2048 certificate for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$work/ec.key" -out "$work/ec.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$work/rsa.key" -out "$work/rsa.pem" 2>/dev/null
handshake() {  # CERT-NAME PROTOCOL-FLAG SUITE-FLAG SUITE
    local out
    out=$(printf 'GET /__health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout 60 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$work/$1.pem" \
            -verify_return_error -ign_eof "$2" "$3" "$4" 2>&1) || true
    if grep -q 'Verify return code: 0 (ok)' <<<"$out" && grep -q "Cipher is $4" <<<"$out" &&
        grep -q '^HTTP/1.1 200' <<<"$out"; then
        pass "$2 $4 ($1 certificate): verified, GET /__health 200"
    else
        fail "$2 $4 ($1 certificate): $(grep -E 'error|Cipher is|Verify return' <<<"$out" | head -3 | tr '\n' ' ')"
    fi
}
for cert in ec rsa; do
    port=$(free_port)
    cat >"$work/tls.json" <<JSON
{"version": 3, "listen_ip": "127.0.0.1", "port": $port,
 "tls": {"public_key": "$work/$cert.pem", "private_key": "$work/$cert.key", "min_version": "TLS12"},
 "endpoints": []}
JSON
    if ! start "$work/tls.json" "$port"; then fail "start with TLS ($cert)"; continue; fi
    if [ $cert = ec ]; then
        handshake ec -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256
        handshake ec -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256
        handshake ec -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256
        handshake ec -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305
    else
        handshake rsa -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384
        handshake rsa -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384
    fi
    stop
done
cpu=$(awk '{for (i = 1; i < NF; i++) if ($i == "-cpu") print $(i + 1)}' <<<"$runner")
echo "$bin under $(basename "${runner%% *}") -cpu $cpu (emulated)"
echo "$target release: $passed passed, $failed failed"
[ "$failed" = 0 ]
