#!/usr/bin/env bash
# Where a proxied request's instructions go: builds gatelet with symbols (release settings,
# not stripped) into target/profile-build, runs it under callgrind behind the benchmark's
# backend (nginx serving the same JSON file as scripts/bench.sh) for N keep-alive requests to
# PATH, and prints callgrind_annotate's exclusive and inclusive tops.
# Usage: scripts/profile.sh [PATH] [N]   (default /status.json, the pass-through; 5000)
# KEEP=1 keeps the callgrind output (for callgrind_annotate --tree=caller and the like).
set -euo pipefail
cd "$(dirname "$0")/.."
path=${1:-/status.json}
n=${2:-5000}
for tool in nginx:nginx-light valgrind:valgrind; do
    command -v "${tool%%:*}" >/dev/null || { sudo=; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get install -y -qq "${tool#*:}" >/dev/null; }
done
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=1 \
    CARGO_TARGET_DIR=target/profile-build cargo build --release --quiet
exec python3 - "$path" "$n" <<'PY'
import os, re, subprocess, sys, tempfile, shutil
sys.path.insert(0, "scripts")
import bench
path, n = sys.argv[1], int(sys.argv[2])
bench.WORK = tempfile.mkdtemp(prefix="gatelet-profile.")
bench.GATELET = "target/profile-build/release/gatelet"
procs = []
try:
    www = os.path.join(bench.WORK, "www"); bench.backend_files(www)
    sensor = os.path.join(bench.WORK, "sensor.json"); open(sensor, "wb").write(bench.STATUS + b"\n")
    bport = bench.free_port()
    open(os.path.join(bench.WORK, "backend.conf"), "w").write(bench.backend_conf(bport, www))
    procs.append(bench.Proc("backend", ["nginx", "-c", f"{bench.WORK}/backend.conf", "-p", bench.WORK], bport, 1))
    port = bench.free_port()
    conf = os.path.join(bench.WORK, "gatelet.json")
    open(conf, "w").write(bench.gatelet_conf(port, bport, sensor, "1h"))
    total = bench.callgrind([bench.GATELET, "run", "-c", conf], port, bench.get(path), n, "profile",
                            dict(os.environ, RUST_LOG="error"))
    out = os.path.join(bench.WORK, f"cg.profile.{n}")
    print(f"{total:,} instructions for {n} requests to {path} (start-up and shutdown included)")
    # Exclusive instructions grouped by where the code lives: the summary the README quotes.
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", out],
                          capture_output=True, text=True).stdout
    groups = {}
    rules = [("malloc/free", ("malloc.c",)), ("memcpy/memmove/memset", ("memmove", "memset", "memcpy")),
             ("libc other", ("libc.so",)), ("hyper", ("/hyper-",)), ("httparse", ("/httparse-",)),
             ("http (HeaderMap, Uri)", ("/http-1",)),
             ("runtime (tokio scheduler, reactor, timers; mio)", ("/tokio-1", "/mio-")),
             ("std/core/alloc", ("/rustc/", "/std-:", "/core-:", "/alloc-:")), ("ld.so", ("ld-linux",))]
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        ir, where = int(m[1].replace(",", "")), m[2]
        file, _, func = where.partition(":")
        if file.startswith("/rustc/"):
            # Standard-library code inlined into a crate's function: charge it to that crate.
            krate = re.match(r"[<&\s]*(?:mut\s+|dyn\s+)?(\w+)::", func)
            where = f"/{krate[1].replace('_', '-')}-:" if krate else where
        name = "gatelet" if file.startswith("src/") or where.startswith("/gatelet-") else next(
            (g for g, keys in rules if any(k in where for k in keys)), "other crates")
        groups[name] = groups.get(name, 0) + ir
    print("exclusive instructions by component:")
    for name, ir in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * ir / total:5.1f}%  {ir / n:8,.0f}/request  {name}")
    for inclusive in ("no", "yes"):
        text = subprocess.run(["callgrind_annotate", f"--inclusive={inclusive}", out],
                              capture_output=True, text=True).stdout
        print("\n".join(text.splitlines()[:60]))
finally:
    for p in procs:
        p.stop()
    if os.environ.get("KEEP"):
        print(f"kept {bench.WORK}")
    else:
        shutil.rmtree(bench.WORK, ignore_errors=True)
PY
