#!/usr/bin/env python3
"""Soak test: gatelet under moderate mixed traffic for a while, its RSS and open descriptors
sampled every 10 s. Run through scripts/soak.sh, which installs nginx, builds gatelet and passes
the settings below. Loopback only; bounded in time and rate.

Traffic (paced, SOAK_RATE requests/s in all, seeded so runs are alike): proxied JSON, passed
through (`no-op`) and decoded and re-encoded, a `group` aggregate of three backends, a sensor
endpoint over a file that a writer thread rewrites in place every 100 ms, a rate-limited
endpoint asked more often than its limit (so 503s are expected), /__health, 404s, and a few
malformed requests (400 and close). The gatelet config is the benchmark's (scripts/bench.py)
with a faster sensor and a limit that refuses.
Half the lanes keep their connection alive; the other half open a new connection per request.
The backend is nginx serving small JSON files; gatelet, nginx and this driver share one core
(SOAK_CPU) so that the soak leaves the machine's other core alone.

Pass/fail: gatelet still running; RSS drift, the largest sample of the last minute minus the
largest of the first (samples at 10-60 s; the two halves of a run shorter than two minutes), at
most SOAK_MAX_DRIFT_KIB; open descriptors back to their idle count once the traffic stops and the
backend has closed the idle upstream connections (after 5 s); at most SOAK_MAX_ERRORS answers
other than the expected ones (timeouts and resets included).
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# The benchmark's backend documents, gatelet config and /proc readers (scripts/ is on the path).
sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
import bench  # noqa: E402
from bench import GATELET, cpu_seconds, free_port  # noqa: E402
import procs as procs_lib  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
RATE = float(os.environ.get("SOAK_RATE", "400"))
LANES = int(os.environ.get("SOAK_LANES", "8"))
CPU = os.environ.get("SOAK_CPU", "1")
# Between the first and the last minute of the default run lie ~210 000 requests: a leak of 5
# bytes per request would pass 1 MiB; the noise measured (glibc's heap top moving) is < 100 KiB.
MAX_DRIFT_KIB = int(os.environ.get("SOAK_MAX_DRIFT_KIB", "1024"))
MAX_ERRORS = int(os.environ.get("SOAK_MAX_ERRORS", "0"))
SAMPLE_EVERY = 10.0
# The backend closes idle upstream connections after 5 s; the lingering close takes <= 2 s.
SETTLE_LIMIT = 20.0
IO_TIMEOUT = 5.0

# What each kind of request is, how often it is sent, and which statuses are expected.
MALFORMED = [
    # Content-Length together with Transfer-Encoding.
    b"POST /json/status HTTP/1.1\r\nHost: soak\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # Two Host headers.
    b"GET /json/status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    # Content-Length that is not 1*DIGIT.
    b"POST /json/status HTTP/1.1\r\nHost: soak\r\nContent-Length: +3\r\n\r\nabc",
    # Not a request line.
    b"\x16\x03\x01\x02\x00 nonsense\r\n\r\n",
]
KINDS = [  # (name, path, weight, expected statuses)
    ("noop", "/status.json", 10, {200}),
    ("json", "/json/status", 20, {200}),
    ("group", "/group", 20, {200}),
    ("sensor", "/sensor", 15, {200}),
    # The endpoint's own bucket (KrakenD's max_rate) answers 503; per-client ones answer 429.
    ("limited", "/limited", 10, {200, 503}),
    ("health", "/__health", 6, {200}),
    ("notfound", "/no/such/endpoint", 12, {404}),
    ("malformed", None, 2, {400}),
]
STOP = threading.Event()


def wait_for(what, predicate, limit=15.0, proc=None):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what}: process exited with {proc.returncode}")
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def rss_kib(pid):
    return bench.status_kib(pid, "VmRSS")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def gatelet_conf(bport, sensor_file):
    """The benchmark's config (no-op and decoded JSON, a group of three, a sensor, a limited
    endpoint), with a sensor read every 200 ms and a limit that refuses."""
    conf = json.loads(bench.gatelet_conf(0, bport, sensor_file))
    conf["timeout"] = "3s"
    conf["extra_config"]["gatelet/server"]["max_connections"] = 64
    sensor = conf["extra_config"]["gatelet/sensors"]["status"]
    sensor["max_age"], sensor["file"]["interval"] = "10s", "200ms"
    for endpoint in conf["endpoints"]:
        if endpoint["endpoint"] == "/limited":
            # Asked ~40 times a second at the default rate: refuses some with 503.
            endpoint["extra_config"]["qos/ratelimit/router"] = {"max_rate": 30, "capacity": 30}
    return json.dumps(conf, indent=1)


def backend_conf(work, port):
    """The benchmark's nginx backend, with keepalive_timeout 5s: nginx closes the upstream
    connections gatelet leaves idle that long, so pooled connections going stale is part of the
    traffic, and once it stops every upstream descriptor must go away (gatelet's own 15 s
    cutoff only stops their reuse; it closes nothing)."""
    bench.WORK = work  # where bench's config puts nginx's pid and log files
    conf = bench.backend_conf(port, f"{work}/www")
    assert "keepalive_timeout 300s" in conf, "scripts/bench.py's backend changed: adapt this"
    return conf.replace("keepalive_timeout 300s", "keepalive_timeout 5s")


class Conn:
    """One client connection with a read buffer; parses Content-Length and chunked answers."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by gatelet")
        self.buf += chunk

    def _take_line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def exchange(self, raw):
        """Sends `raw`, returns (status, headers, body)."""
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._take_line().split(b";")[0], 16)
                if size == 0:
                    self._take_line()
                    break
                body += self._take(size)
                self._take(2)
        else:
            body = b""
        return status, headers, body

    def closed_by_peer(self):
        """True once gatelet has closed (EOF), within IO_TIMEOUT."""
        try:
            while self.sock.recv(65536):
                pass
            return True
        except OSError:
            return False


class Lane(threading.Thread):
    """Sends requests at `rate` per second, on one kept-alive connection or a new one each."""

    def __init__(self, index, keepalive, rate, port):
        super().__init__(daemon=True)
        self.keepalive, self.rate, self.port = keepalive, rate, port
        self.rng = random.Random(index)
        self.count = {}  # (kind, status or error name) -> n
        self.errors = []  # the first few unexpected answers, for the report
        self.unexpected = 0
        self.connections = 0
        self.sensor_seq = (None, None)  # first and last seq seen from /sensor

    def note(self, kind, outcome, expected, detail=""):
        key = (kind, outcome)
        self.count[key] = self.count.get(key, 0) + 1
        if expected:
            return
        self.unexpected += 1
        if len(self.errors) < 10:
            self.errors.append(f"{kind}: {outcome} {detail}"[:300])

    def pick(self):
        kinds = KINDS if not self.keepalive else [k for k in KINDS if k[0] != "malformed"]
        return self.rng.choices(kinds, weights=[k[2] for k in kinds])[0]

    def run(self):
        conn = None
        due = time.monotonic()
        while not STOP.is_set():
            now = time.monotonic()
            if now < due:
                # Pacing to the target rate; not synchronisation.
                STOP.wait(due - now)
                continue
            due = max(due + 1.0 / self.rate, now - 1.0)
            name, path, _, expected = self.pick()
            if path is None:
                raw = self.rng.choice(MALFORMED)
            else:
                close = "" if self.keepalive else "Connection: close\r\n"
                raw = f"GET {path} HTTP/1.1\r\nHost: soak\r\n{close}\r\n".encode()
            try:
                if conn is None:
                    conn = Conn(self.port)
                    self.connections += 1
                status, headers, body = conn.exchange(raw)
                ok = status in expected and self.check(name, status, body)
                self.note(name, status, ok, body[:200])
                closing = headers.get("connection", "").lower() == "close" or not self.keepalive
                if closing:
                    if not conn.closed_by_peer():
                        self.note(name, "not closed", False)
                    conn.close()
                    conn = None
            except (OSError, ValueError, IndexError) as e:
                self.note(name, type(e).__name__, False, str(e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def check(self, name, status, body):
        if status != 200:
            return True
        try:
            doc = json.loads(body)
        except ValueError:
            return False
        if name in ("json", "noop", "limited"):
            return doc.get("bus") == "bus-17"
        if name == "group":
            return doc.get("engine", {}).get("fuel_pct") == 71 and doc.get("load", {}).get("capacity") == 80
        if name == "sensor":
            seq = doc.get("seq")
            first = self.sensor_seq[0] if self.sensor_seq[0] is not None else seq
            self.sensor_seq = (first, seq)
            return isinstance(seq, int)
        if name == "health":
            return "status" in doc
        return True


def sensor_writer(path):
    """Rewrites the sensor file in place every 100 ms (a reader may catch it half-written:
    gatelet counts that frame bad and keeps serving the last good one)."""
    seq = 0
    while not STOP.wait(0.1):
        seq += 1
        with open(path, "w") as f:
            f.write(json.dumps({"seq": seq, "temp_c": 20 + seq % 7, "door": "closed"}) + "\n")


def main():
    work = tempfile.mkdtemp(prefix="gatelet-soak-")
    procs = []

    def stop_all():
        STOP.set()
        for p in procs:
            procs_lib.stop(p)

    # Stopped from outside (Ctrl-C, kill): still stop nginx and gatelet, remove the work dir.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return soak(work, procs)
    except KeyboardInterrupt:
        return 130
    finally:
        stop_all()
        if not os.environ.get("KEEP"):
            subprocess.run(["rm", "-rf", work])
        else:
            print(f"work directory kept: {work}")


def soak(work, procs):
    bench.backend_files(f"{work}/www")
    bport = free_port()
    open(f"{work}/backend.conf", "w").write(backend_conf(work, bport))
    pin = ["taskset", "-c", CPU]
    backend = subprocess.Popen(pin + ["nginx", "-c", f"{work}/backend.conf", "-p", work],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    procs.append(backend)
    wait_for("nginx", lambda: _connects(bport), proc=backend)

    sensor_file = f"{work}/sensor.json"
    open(sensor_file, "w").write(json.dumps({"seq": 0, "temp_c": 20, "door": "closed"}) + "\n")
    open(f"{work}/krakend.json", "w").write(gatelet_conf(bport, sensor_file))
    log = open(f"{work}/gatelet.log", "w")
    gatelet = subprocess.Popen(pin + [GATELET, "run", "-c", f"{work}/krakend.json"],
                               stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="info"))
    procs.append(gatelet)
    pid = gatelet.pid  # taskset execs gatelet: same pid

    def listening():
        for line in open(f"{work}/gatelet.log"):
            if "listening on " in line:
                return int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        return None

    port = wait_for("gatelet's 'listening on' line", listening, proc=gatelet)
    wait_for("gatelet to accept", lambda: _connects(port), proc=gatelet)
    # The sensor's first reading, so /sensor answers from the start.
    wait_for("the sensor's first reading", lambda: _get(port, "/sensor")[0] == 200, proc=gatelet)
    idle_fds = wait_for("gatelet's idle descriptors", lambda: _stable(lambda: fds(pid)), proc=gatelet)
    idle_rss = rss_kib(pid)
    os.sched_setaffinity(0, {int(c) for c in CPU.split(",")})

    print(f"soak: {SECONDS}s at {RATE:.0f} requests/s over {LANES} lanes "
          f"({LANES // 2} keep-alive, {LANES - LANES // 2} new connection per request), CPU {CPU}")
    print(f"gatelet pid {pid} on 127.0.0.1:{port}; idle RSS {idle_rss} KiB, {idle_fds} descriptors")
    lanes = [Lane(i, i % 2 == 0, RATE / LANES, port) for i in range(LANES)]
    writer = threading.Thread(target=sensor_writer, args=(sensor_file,), daemon=True)
    writer.start()
    start = time.monotonic()
    cpu0 = sum(cpu_seconds(pid))
    for lane in lanes:
        lane.start()
    samples = []  # (seconds since start, rss KiB, fds, requests so far)
    with open(f"{work}/samples.csv", "w") as csv:
        csv.write("seconds,rss_kib,fds,requests\n")
        while True:
            t = time.monotonic() - start
            next_at = (len(samples) + 1) * SAMPLE_EVERY
            if next_at > SECONDS:
                next_at = SECONDS
            STOP.wait(max(0.0, next_at - t))
            if gatelet.poll() is not None:
                break
            t = time.monotonic() - start
            total = sum(sum(lane.count.values()) for lane in lanes)
            sample = (t, rss_kib(pid), fds(pid), total)
            samples.append(sample)
            csv.write(",".join(str(round(v, 1)) for v in sample) + "\n")
            csv.flush()
            print(f"  t={t:5.0f}s  rss={sample[1]:6d} KiB  fds={sample[2]:4d}  requests={total}", flush=True)
            if t >= SECONDS:
                break
    STOP.set()
    for lane in lanes:
        lane.join(IO_TIMEOUT * 2)
    writer.join()
    elapsed = time.monotonic() - start
    failures = []
    if gatelet.poll() is not None:
        failures.append(f"gatelet died (exit {gatelet.returncode})")
        print("gatelet's last log lines:\n" + "".join(open(f"{work}/gatelet.log").readlines()[-20:]))
        end_fds, end_rss = None, None
    else:
        cpu = sum(cpu_seconds(pid)) - cpu0
        # Client connections closed, idle upstream ones closed by nginx: back to the idle count.
        end_fds = _settle(lambda: fds(pid), idle_fds, SETTLE_LIMIT)
        end_rss = rss_kib(pid)
        if end_fds != idle_fds:
            # What stayed open, for the report.
            subprocess.run(f"ls -l /proc/{pid}/fd; ss -tanpo | grep 'pid={pid},'", shell=True)
        health = json.loads(_get(port, "/__health")[1] or b"{}")
        sensor = health.get("agents", {}).get("status", {})

    # Report.
    counts = {}
    for lane in lanes:
        for key, n in lane.count.items():
            counts[key] = counts.get(key, 0) + n
    requests = sum(counts.values())
    errors = sum(lane.unexpected for lane in lanes)
    unexpected = [e for lane in lanes for e in lane.errors]
    print(f"\nrequests: {requests} in {elapsed:.0f}s ({requests / elapsed:.0f}/s), "
          f"{sum(lane.connections for lane in lanes)} connections")
    for kind, _, _, _ in KINDS:
        outcomes = ", ".join(f"{o}: {n}" for (k, o), n in sorted(counts.items(), key=str) if k == kind)
        print(f"  {kind:9s} {outcomes}")
    print(f"unexpected answers or failures: {errors}")
    for e in unexpected[:10]:
        print(f"  {e}")
    if samples and end_rss is not None:
        print(f"gatelet CPU: {cpu:.1f}s ({100 * cpu / elapsed:.1f}% of a core, "
              f"{1e6 * cpu / max(requests, 1):.0f} us per request)")
        if sensor:
            print(f"sensor: frames_ok {sensor.get('frames_ok')}, frames_bad {sensor.get('frames_bad')} "
                  f"(half-written file caught), status {sensor.get('status')}")
    if samples:
        window = min(60.0, SECONDS / 2)
        warm = [s for s in samples if s[0] > SAMPLE_EVERY - 1] or samples
        first = [s[1] for s in warm if s[0] <= warm[0][0] + window - 1] or [warm[0][1]]
        last = [s[1] for s in warm if s[0] >= samples[-1][0] - window + 1] or [warm[-1][1]]
        rss = [s[1] for s in samples]
        drift = max(last) - max(first)
        print(f"RSS: idle {idle_rss} KiB; first {window:.0f}s max {max(first)} KiB, last {window:.0f}s max "
              f"{max(last)} KiB: drift {drift:+d} KiB (limit {MAX_DRIFT_KIB}); min {min(rss)}, "
              f"max {max(rss)} KiB; after the traffic {end_rss} KiB")
        fd_values = [s[2] for s in samples]
        print(f"descriptors: idle {idle_fds}, under load min {min(fd_values)} max {max(fd_values)}, "
              f"after the traffic {end_fds}")
        if drift > MAX_DRIFT_KIB:
            failures.append(f"RSS drifted {drift} KiB (limit {MAX_DRIFT_KIB})")
    if end_fds is not None and end_fds != idle_fds:
        failures.append(f"descriptors: {end_fds} open after the traffic, {idle_fds} idle")
    if errors > MAX_ERRORS:
        failures.append(f"{errors} unexpected answers or failures (limit {MAX_ERRORS})")
    for f in failures:
        print(f"FAIL: {f}")
    if not failures:
        print("PASS")
    return 1 if failures else 0


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def _get(port, path):
    try:
        c = Conn(port)
        try:
            status, _, body = c.exchange(f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
            return status, body
        finally:
            c.close()
    except (OSError, ValueError, IndexError):
        return None, None


def _stable(read):
    """The value once two readings 0.2 s apart agree."""
    a = read()
    time.sleep(0.2)
    return a if read() == a else None


def _settle(read, want, limit):
    end = time.monotonic() + limit
    value = read()
    while value != want and time.monotonic() < end:
        time.sleep(0.2)
        value = read()
    return value


if __name__ == "__main__":
    sys.exit(main())
