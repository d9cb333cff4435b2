#!/usr/bin/env python3
"""Delivery latency of the outbox, bus -> central, on loopback with the link up.

Starts a central gatelet (gatelet/inbox) and a bus gatelet (gatelet/outbox delivering to it),
both the release binary, in a scratch directory; POSTs N events to the bus one every GAP ms
(every 7th critical), while a consumer pages through the central's `?since=` endpoint as fast
as it can. Latency = from the bus's 201 to the consumer first seeing the event. Prints p50, p99
and max for normal events (synced in groups, every sync_window) and critical ones (synced one
by one), and the POST latency (append + sync) on the bus.

Usage: scripts/outbox-figures.py [N] [GAP_MS] [SYNC_WINDOW]   (default 1000 5 100ms)
Loopback only; stops by itself."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
GAP = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.005
WINDOW = sys.argv[3] if len(sys.argv) > 3 else "100ms"


def start(binary, config, path):
    with open(path, "w") as f:
        json.dump(config, f)
    p = subprocess.Popen([binary, "run", "-c", path], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         env=dict(os.environ, RUST_LOG="info"), text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stderr.readline()
        if "listening on " in line:
            addr = line.split("listening on ")[1].split()[0]
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            host, port = addr.rsplit(":", 1)
            return p, int(port)
        if not line and p.poll() is not None:
            break
    p.kill()
    sys.exit("gatelet did not start")


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "gatelet")
    tmp = tempfile.mkdtemp(prefix="gatelet-outbox-figures-")
    procs = []
    try:
        central, cport = start(binary, {
            "version": 3, "listen_ip": "127.0.0.1", "port": 0,
            "extra_config": {"gatelet/inbox": {"dir": os.path.join(tmp, "inbox")}},
            "endpoints": [
                {"endpoint": "/inbox", "method": "POST", "backend": [{"extra_config": {"gatelet/inbox": {}}}]},
                {"endpoint": "/inbox", "method": "GET", "backend": [{"extra_config": {"gatelet/inbox": {}}}]}]},
            os.path.join(tmp, "central.json"))
        procs.append(central)
        bus, bport = start(binary, {
            "version": 3, "listen_ip": "127.0.0.1", "port": 0,
            "extra_config": {"gatelet/outbox": {
                "dir": os.path.join(tmp, "outbox"), "bus": "bus-1", "critical": ["alarm"], "sync_window": WINDOW,
                "deliver": {"url": f"http://127.0.0.1:{cport}/inbox"}}},
            "endpoints": [{"endpoint": "/events", "method": "POST",
                           "backend": [{"extra_config": {"gatelet/outbox": {}}}]}]},
            os.path.join(tmp, "bus.json"))
        procs.append(bus)

        acked = {}  # n -> time of the 201
        seen = {}  # n -> time first seen at the central
        done = threading.Event()

        def consume():
            conn = http.client.HTTPConnection("127.0.0.1", cport, timeout=10)
            since = 0
            end = time.time() + 120
            while time.time() < end and len(seen) < N:
                conn.request("GET", f"/inbox?since={since}")
                doc = json.loads(conn.getresponse().read())
                now = time.monotonic()
                for e in doc["events"]:
                    n = e.get("event", {}).get("n")
                    if n is not None:
                        seen.setdefault(n, now)
                since = doc["next"]
                if not doc["events"]:
                    time.sleep(0.0005)
            done.set()

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        conn = http.client.HTTPConnection("127.0.0.1", bport, timeout=10)
        post_ms = {"tick": [], "alarm": []}
        kinds = {}
        for n in range(N):
            kind = "alarm" if n % 7 == 0 else "tick"
            kinds[n] = kind
            body = json.dumps({"type": kind, "n": n})
            t0 = time.monotonic()
            conn.request("POST", "/events", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            t1 = time.monotonic()
            if r.status != 201:
                sys.exit(f"POST {n}: {r.status}")
            acked[n] = t1
            post_ms[kind].append((t1 - t0) * 1000)
            time.sleep(GAP)
        done.wait(120)
        lat = {"tick": [], "alarm": []}
        for n, t in acked.items():
            if n in seen:
                lat[kinds[n]].append(max(0.0, seen[n] - t) * 1000)
        print(f"{N} events, one every {GAP * 1000:g} ms, sync_window {WINDOW}, loopback; {len(seen)} arrived")
        for kind, label in (("tick", "normal"), ("alarm", "critical")):
            v, p = lat[kind], post_ms[kind]
            print(f"{label:8}: 201 -> central p50 {pct(v, .5):7.1f} ms  p99 {pct(v, .99):7.1f} ms  max {max(v or [0]):7.1f} ms"
                  f"   | POST p50 {pct(p, .5):6.1f} ms  p99 {pct(p, .99):6.1f} ms  (n={len(v)})")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
