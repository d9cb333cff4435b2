#!/usr/bin/env bash
# Figures for the ARM builds, every one taken on x86-64 under emulation unless it is a file size:
#   - stripped binary size per target, with and without TLS (the release profile strips);
#   - RSS of the qemu-user process running the release binary: idle, and after N keep-alive
#     proxied requests (emulated: it includes qemu's own translator and code cache), and for
#     32-bit targets the guest's share (the mappings inside qemu's 4 GiB guest reservation);
#   - instructions per proxied request: the guest ARM instructions, counted by a qemu TCG plugin
#     (scripts/qemu-insn.c) in Debian's dynamically linked qemu-user 7.2 (the static 10.0 that
#     runs the tests cannot load plugins), for the request scripts/callgrind.sh measures on
#     x86-64 (N, then 2N GETs forwarding two headers to a local backend; the difference / N).
# Loopback only. Usage: scripts/pi-figures.sh [N] [TARGET...]   (default 2000, all three)
# SKIP_SIZES=1 measures the binaries already built instead of building both variants.
set -euo pipefail
cd "$(dirname "$0")/.."
N=2000
if [[ ${1:-} =~ ^[0-9]+$ ]]; then N=$1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(armv5te armv7 aarch64)
tools=$PWD/target/cross-tools
mkdir -p "$tools/figures"

# Debian's qemu-user 7.2 (dynamic, plugins enabled) and libcapstone4, unpacked, not installed;
# the plugin built against qemu-plugin.h from the same version's source package.
plugin_qemu() {
    local d=$tools/qemu-plugin debs v
    [ -e "$d/.complete" ] && return 0
    rm -rf "$d"
    mkdir -p "$d/debs" "$d/src"
    v=$(apt-cache policy qemu-user | sed -n 's/^  Candidate: //p')
    (cd "$d/debs" && apt-get -qq -o APT::Sandbox::User=root download "qemu-user=$v" libcapstone4)
    for debs in "$d"/debs/*.deb; do dpkg-deb -x "$debs" "$d/root"; done
    # The matching source, through a private deb-src list made from the system's repositories.
    mkdir -p "$d/apt/lists/partial" "$d/apt/cache/archives/partial" "$d/apt/parts"
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' | sort -u |
        awk '{print "deb-src " $1 " " $2 " " $3}' >"$d/apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$d/apt/sources.list" -o "Dir::Etc::SourceParts=$d/apt/parts"
        -o "Dir::State::Lists=$d/apt/lists" -o "Dir::Cache=$d/apt/cache" -o "APT::Sandbox::User=root" -qq)
    apt-get "${opts[@]}" update
    (cd "$d/src" && apt-get "${opts[@]}" source --download-only "qemu=${v%+b*}")
    tar -xJf "$d"/src/qemu_*.orig.tar.xz -C "$d/src" --wildcards '*/include/qemu/qemu-plugin.h'
    gcc -shared -fPIC -O2 -Wall -Wextra -I"$(dirname "$(find "$d/src" -name qemu-plugin.h)")" \
        -o "$d/qemu-insn.so" scripts/qemu-insn.c
    rm -rf "$d/debs" "$d/src" "$d/apt"
    touch "$d/.complete"
}

declare -A triple=([armv5te]=armv5te-unknown-linux-gnueabi [armv7]=armv7-unknown-linux-gnueabihf [aarch64]=aarch64-unknown-linux-gnu)
echo "| target | CPU (qemu) | stripped, TLS | stripped, no TLS |"
echo "|---|---|---|---|"
for t in "${targets[@]}"; do
    tr=${triple[$t]}
    bin=target/$tr/release/gatelet
    runner=$(scripts/cross.sh --env "$t" | sed -n "s/^export CARGO_TARGET_.*_RUNNER='\(.*\)'/\1/p")
    cpu=$(awk '{for (i = 1; i < NF; i++) if ($i == "-cpu") print $(i + 1)}' <<<"$runner")
    if [ -z "${SKIP_SIZES:-}" ]; then
        notls=failed tls=failed
        scripts/cross.sh "$t" -- --no-default-features >/dev/null 2>&1 && cp "$bin" "$tools/figures/$t-notls" && notls=$(stat -c %s "$bin")
        scripts/cross.sh "$t" >/dev/null 2>&1 && cp "$bin" "$tools/figures/$t-tls" && tls=$(stat -c %s "$bin")
    else
        tls=$(stat -c %s "$tools/figures/$t-tls" 2>/dev/null || echo -)
        notls=$(stat -c %s "$tools/figures/$t-notls" 2>/dev/null || echo -)
    fi
    echo "| $tr | $cpu | $tls | $notls |"
done

plugin_qemu
echo
echo "| target | qemu RSS idle (emulated) | after $N requests (emulated) | ARM instructions per proxied request (emulated) |"
echo "|---|---|---|---|"
for t in "${targets[@]}"; do
    bin=$tools/figures/$t-tls
    [ -x "$bin" ] || { echo "| ${triple[$t]} | no binary | | |"; continue; }
    runner=$(scripts/cross.sh --env "$t" | sed -n "s/^export CARGO_TARGET_.*_RUNNER='\(.*\)'/\1/p")
    python3 - "$N" "$bin" "$runner" "$tools/qemu-plugin" "${triple[$t]}" <<'PY'
import json, os, re, signal, socket, subprocess, sys, tempfile, threading
sys.path.insert(0, "scripts")
sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
import bench
n, binary, runner, plugdir, triple = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(), sys.argv[4], sys.argv[5]
work = tempfile.mkdtemp()
bench.WORK = work

import json_backend
backend = json_backend.start()
req = b"GET /vehicle/7 HTTP/1.1\r\nHost: bus\r\nX-Request-Id: abc-123\r\nAuthorization: Bearer t\r\n\r\n"

def config():
    port = bench.free_port()
    conf = os.path.join(work, "krakend.json")
    with open(conf, "w") as f:
        json.dump({"version": 3, "listen_ip": "127.0.0.1", "port": port, "endpoints": [
            {"endpoint": "/vehicle/{id}", "input_headers": ["X-Request-Id", "Authorization"],
             "backend": [{"host": [f"http://127.0.0.1:{backend.server_address[1]}"], "url_pattern": "/status/{id}",
                          "allow": ["fuel", "tyres.fl"]}]}]}, f)
    return port, conf

def requests(s, count):
    buf = b""
    for _ in range(count):
        s.sendall(req)
        while True:
            done = bench.response_end(buf)
            if done:
                assert done[0] == 200, done
                buf = buf[done[1]:]
                break
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            buf += chunk

def rss_kib(pid):
    """(qemu's whole RSS, the guest's share or None), KiB. A 32-bit guest lives in one 4 GiB
    reservation of qemu's address space: the run of adjacent mappings that holds the binary."""
    vmas, cur = [], None
    for line in open(f"/proc/{pid}/smaps"):
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
        if m:
            cur = [int(m[1], 16), int(m[2], 16), m[3], 0]
            vmas.append(cur)
        elif line.startswith("Rss:"):
            cur[3] = int(line.split()[1])
    vmas.sort()
    runs, run = [], [vmas[0]]
    for v in vmas[1:]:
        if v[0] == run[-1][1]:
            run.append(v)
        else:
            runs.append(run)
            run = [v]
    runs.append(run)
    guest = None
    for run in runs:
        if run[-1][1] - run[0][0] >= (4 << 30) - (1 << 20) and any(v[2] == os.path.realpath(binary) for v in run):
            guest = sum(v[3] for v in run)
    return sum(v[3] for v in vmas), guest

def run(prefix, count, env=None):
    port, conf = config()
    p = subprocess.Popen(prefix + [binary, "run", "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="error", **(env or {})))
    try:
        bench.wait_port(port, p, 120)
        idle = rss_kib(p.pid)
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        requests(s, count)
        busy = rss_kib(p.pid)
        s.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    return idle, busy

idle, busy = run(runner, n)
# Instruction counts: Debian's qemu 7.2 with the plugin, same CPU and library prefix.
qemu = os.path.join(plugdir, "root/usr/bin", os.path.basename(runner[0]))
env = {"LD_LIBRARY_PATH": os.path.join(plugdir, "root/usr/lib/x86_64-linux-gnu")}
counts = []
for count in (n, 2 * n):
    out = os.path.join(work, f"insn.{count}")
    run([qemu, "-plugin", f"{plugdir}/qemu-insn.so,out={out}"] + runner[1:], count, env)
    counts.append(int(open(out).read()))
per = (counts[1] - counts[0]) // n
def kib(r):
    return f"{r[0]} KiB" + (f" (guest {r[1]} KiB)" if r[1] is not None else "")
print(f"| {triple} | {kib(idle)} | {kib(busy)} | {per} (guest instructions {counts[0]} for {n} requests, {counts[1]} for {2 * n}) |")
PY
done
