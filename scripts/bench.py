#!/usr/bin/env python3
"""gatelet side by side with nginx and HAProxy, in one run: writes BENCHMARKS.md and
docs/bench.png. Run through scripts/bench.sh, which installs the tools and builds gatelet.

Layout on this 2-core machine: the gateway under test is pinned to core 0; the load generator
(wrk) and the backend (nginx serving small JSON files) share core 1. Contenders are interleaved
(A B C A B C ...) in every round so that drift on a shared machine hits them alike. Everything
listens on 127.0.0.1 and every run is bounded in time.

CPU per request is the gateway process's own utime+stime (/proc/PID/stat) over the requests wrk
completed in that window: with the backend and wrk sharing a core, requests/s saturates near the
backend's limit, and CPU per request is the figure that tells gateways apart.

System calls per request: strace attached to each contender's serving process while a counted
number of keep-alive requests (BENCH_STRACE_N) is answered, once per round, with an untraced
perf count of the same load beside it where perf works; see syscalls() and write_syscalls().
"""

import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
import procs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
GATELET = os.path.join(TARGET, "release", "gatelet")
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "50,1000").split(",")]
HELD = 1000  # connections held open for the peak-RSS figure
CALLGRIND_N = int(os.environ.get("BENCH_CALLGRIND_N", "2000"))
# Requests counted under strace for the system calls per request; 0 leaves that section out.
STRACE_N = int(os.environ.get("BENCH_STRACE_N", "10000"))
# BENCH_QUICK=1: scenario 1 only, no footprint or instruction counts, no files written.
QUICK = os.environ.get("BENCH_QUICK") == "1"
TICK = os.sysconf("SC_CLK_TCK")
# A ~300-byte status document, as a bus would answer it.
STATUS = json.dumps({
    "bus": "bus-17", "route": "42", "ts": "2026-11-23T10:00:00Z",
    "fuel_pct": 71, "speed_kmh": 42.5, "odometer_km": 183422,
    "tyres_psi": {"fl": 32.1, "fr": 31.9, "rl": 33.0, "rr": 32.8},
    "gps": {"lat": 52.5200, "lon": 13.4050, "satellites": 9, "fix": 1},
    "doors": {"front": "closed", "rear": "closed"}, "passengers": 23, "next_stop": "Alexanderplatz",
}).encode()
PARTS = {
    "a.json": {"fuel_pct": 71, "range_km": 312},
    "b.json": {"lat": 52.52, "lon": 13.405, "speed_kmh": 42.5},
    "c.json": {"passengers": 23, "capacity": 80},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_files(www):
    """The backend's documents: the status document and the three parts of the group."""
    os.mkdir(www)
    open(os.path.join(www, "status.json"), "wb").write(STATUS)
    for name, doc in PARTS.items():
        open(os.path.join(www, name), "w").write(json.dumps(doc))


def get(path):
    """A keep-alive GET of path, as the footprint and instruction counts send it."""
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def wait_port(port, proc, limit=15.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {limit}s")


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """(user, system) CPU seconds of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime


class Proc:
    def __init__(self, name, argv, port, core, env=None):
        self.name, self.port = name, port
        self.log = open(os.path.join(WORK, f"{name}.log"), "w")
        self.p = subprocess.Popen(["taskset", "-c", str(core)] + argv, stdout=self.log,
                                  stderr=subprocess.STDOUT, env=env, preexec_fn=raise_nofile)
        wait_port(port, self.p)
        self.pid = self.p.pid  # taskset execs the program: same pid

    def stop(self):
        procs.stop(self.p)


def raise_nofile():
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def backend_conf(port, root):
    return f"""daemon off; master_process off; worker_processes 1; pid {WORK}/backend.pid;
error_log {WORK}/backend.err warn;
events {{ worker_connections 16384; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  open_file_cache max=16; open_file_cache_valid 600s;
  default_type application/json;
  server {{ listen 127.0.0.1:{port} backlog=4096; root {root}; }}
}}
"""


def nginx_conf(port, backend):
    return f"""daemon off; master_process off; worker_processes 1; pid {WORK}/nginx.pid;
error_log {WORK}/nginx.err warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 4096; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 32; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""


def haproxy_conf(port, backend):
    return f"""global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 3s
  timeout client 300s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  server s1 127.0.0.1:{backend}
"""


def gatelet_conf(port, backend, sensor_file, sensor_interval="1s"):
    host = [f"http://127.0.0.1:{backend}"]
    return json.dumps({
        "version": 3, "listen_ip": "127.0.0.1", "port": port, "timeout": "10s",
        "extra_config": {
            "gatelet/server": {"max_connections": 4096},
            "gatelet/sensors": {"status": {"decode": "json", "max_age": "1h",
                                           "file": {"path": sensor_file, "interval": sensor_interval}}},
        },
        "endpoints": [
            # Scenario 1 as nginx and HAProxy do it: the answer passes through untouched.
            {"endpoint": "/status.json", "output_encoding": "no-op",
             "backend": [{"host": host, "url_pattern": "/status.json", "encoding": "no-op"}]},
            # Scenario 1 as a KrakenD user writes it by default: decoded and re-encoded.
            {"endpoint": "/json/status", "backend": [{"host": host, "url_pattern": "/status.json"}]},
            # Scenario 2: three backends grouped into one answer.
            {"endpoint": "/group", "backend": [
                {"host": host, "url_pattern": "/a.json", "group": "engine"},
                {"host": host, "url_pattern": "/b.json", "group": "gps"},
                {"host": host, "url_pattern": "/c.json", "group": "load"}]},
            # Scenario 3: a sensor reading held in memory.
            {"endpoint": "/sensor", "backend": [
                {"extra_config": {"gatelet/sensor": {"name": "status"}}, "target": "value"}]},
            # Scenario 4: scenario 1 behind endpoint and per-client buckets that always admit.
            {"endpoint": "/limited", "output_encoding": "no-op",
             "extra_config": {"qos/ratelimit/router": {
                 "max_rate": 100000000, "capacity": 100000000,
                 "client_max_rate": 100000000, "client_capacity": 100000000, "strategy": "ip"}},
             "backend": [{"host": host, "url_pattern": "/status.json", "encoding": "no-op"}]},
        ],
    }, indent=1)


WRK_LAT = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def wrk(port, path, conns, seconds):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
         "--timeout", "10s", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 60, preexec_fn=raise_nofile).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s)", out)
    requests = int(m.group(1))
    lat = {}
    for q, v, unit in WRK_LAT.findall(out):
        lat[q] = float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests,
        "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def measured(proc, path, conns):
    (u0, s0) = cpu_seconds(proc.pid)
    r = wrk(proc.port, path, conns, SECONDS)
    (u1, s1) = cpu_seconds(proc.pid)
    used = (u1 - u0) + (s1 - s0)
    r["cpu_us_per_req"] = used * 1e6 / max(r["requests"], 1)
    r["user_share"] = (u1 - u0) / used if used else None
    return r


def hold(port, n, path):
    """Opens n keep-alive connections, each with one answered request, then closes them."""
    conns, ok = [], 0
    req = get(path)
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(req)
        conns.append(s)
    for s in conns:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        ok += data.startswith(b"HTTP/1.1 200")
    return conns, ok


def response_end(buf):
    """(status, length) of the first complete HTTP/1.1 answer in buf, or None if it is not
    complete yet (Content-Length or chunked body)."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    head = buf[:i].decode("latin-1").lower()
    status = int(head.split(None, 2)[1]) if head.startswith("http/") else 0
    m = re.search(r"content-length:\s*(\d+)", head)
    if m:
        end = i + 4 + int(m.group(1))
        return (status, end) if len(buf) >= end else None
    j = buf.find(b"\r\n0\r\n\r\n", i)
    return (status, j + 7) if j >= 0 else None


def keepalive_load(port, path, n, conns, limit):
    """Sends exactly n keep-alive GETs of path over `conns` connections, one request in flight on
    each, and reads every answer; the connections are opened here and closed at the end. Returns
    the number of answers other than 200. Pinned to core 1, the load generator's, where there is
    one."""
    req = get(path)
    sel = selectors.DefaultSelector()
    socks, bufs = [], {}
    sent = answered = bad = 0
    end = time.monotonic() + limit
    affinity = os.sched_getaffinity(0)
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    try:
        for _ in range(min(conns, n)):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
        for s in socks:
            s.sendall(req)
            sent += 1
            s.setblocking(False)
            bufs[s] = b""
            sel.register(s, selectors.EVENT_READ)
        while answered < n:
            if time.monotonic() > end:
                raise SystemExit(f"port {port}: {answered} of {n} answers after {limit}s")
            for key, _ in sel.select(1.0):
                s = key.fileobj
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise SystemExit(f"port {port}: connection closed after {answered} answers")
                buf = bufs[s] + chunk
                while (done := response_end(buf)):
                    buf = buf[done[1]:]
                    answered += 1
                    bad += done[0] != 200
                    if sent < n:
                        if s.send(req) != len(req):
                            raise SystemExit(f"port {port}: short send of a request")
                        sent += 1
                bufs[s] = buf
    finally:
        sel.close()
        for s in socks:
            s.close()
        os.sched_setaffinity(0, affinity)
    return bad


def callgrind(argv, port, req, n, tag, env=None):
    """Instructions the process runs for n keep-alive requests `req` (bytes) on one connection
    (user space). Also scripts/callgrind.sh's and scripts/profile.sh's measurement."""
    out = os.path.join(WORK, f"cg.{tag}.{n}")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_port(port, p, 120)
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        buf = b""
        for _ in range(n):
            s.sendall(req)
            while True:
                done = response_end(buf)
                if done:
                    buf = buf[done[1]:]
                    break
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit(f"{tag}: connection closed under callgrind")
                buf += chunk
        s.close()
    finally:
        # Under valgrind a SIGTERM arriving right after a close is sometimes not acted on (seen
        # with nginx): ask again every few seconds before giving up on the count.
        for _ in range(12):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
                break
            except subprocess.TimeoutExpired:
                pass
        else:
            p.kill()
            p.wait()
    # nginx and HAProxy may write one file per process/thread; sum what this run wrote.
    total = 0
    for f in os.listdir(WORK):
        if f.startswith(f"cg.{tag}.{n}"):
            for line in open(os.path.join(WORK, f)):
                if line.startswith("summary:") or line.startswith("totals:"):
                    total += int(line.split()[1])
                    break
    return total


# System-call classes of the per-request breakdown; anything else counts as "other".
SYSCALL_CLASSES = {
    "read": ("read", "readv", "recvfrom", "recvmsg", "recvmmsg", "pread64", "preadv", "preadv2"),
    "write": ("write", "writev", "sendto", "sendmsg", "sendmmsg", "sendfile", "pwrite64", "pwritev",
              "pwritev2"),
    "epoll_wait": ("epoll_wait", "epoll_pwait", "epoll_pwait2"),
    "epoll_ctl": ("epoll_ctl",),
    "futex": ("futex",),
    "timerfd_settime": ("timerfd_settime",),
}
STRACE_CONNS = 10
FAILED_CALL = re.compile(r"^(?:\d+\s+)?(?:<\.\.\.\s+)?([a-z_0-9]+)(?:\(|\s+resumed>).*=\s+-1\s+(E[A-Z0-9]+)")


def traced_pids(pid):
    """The processes that serve requests: the children of pid if it has any (nginx's workers
    under a master), else pid itself (nginx with master_process off, HAProxy -db, gatelet)."""
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            kids += [int(k) for k in open(f"/proc/{pid}/task/{task}/children").read().split()]
        except OSError:
            pass
    return kids or [pid]


def traced_by(pids, tracer):
    """Whether every thread of every pid has `tracer` as its TracerPid."""
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                if status_kib(f"{pid}/task/{task}", "TracerPid") != tracer:
                    return False
            except OSError:  # a thread that just exited
                pass
    return True


def untraced_syscalls(pids, port, path, n):
    """System calls of pids, all threads, over the same n requests without ptrace: `perf stat`
    counts the raw_syscalls:sys_enter tracepoint. A cross-check of strace's figure, which batching
    under strace moves; None where perf is missing or not allowed. The half second before the
    load and the linger after it are counted too (nothing subtracted)."""
    if not shutil.which("perf"):
        return None
    out = os.path.join(WORK, f"perf.{port}")
    err = open(out + ".err", "w")
    pr = subprocess.Popen(["perf", "stat", "-x,", "-o", out, "-e", "raw_syscalls:sys_enter",
                           "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=err)
    try:
        time.sleep(0.5)  # perf stat tells nothing when it is counting: give it the time to attach
        if pr.poll() is not None:
            return None
        keepalive_load(port, path, n, STRACE_CONNS, max(120, n / 50))
        time.sleep(0.3)
    except SystemExit as e:  # the client gave up: no figure, but the benchmark goes on
        print(f"untraced system calls: {e}", file=sys.stderr)
        return None
    finally:
        pr.send_signal(signal.SIGINT)
        try:
            pr.wait(10)
        except subprocess.TimeoutExpired:
            pr.kill()
            pr.wait()
    try:
        for line in open(out):
            f = line.split(",")
            if len(f) > 2 and f[2].startswith("raw_syscalls:sys_enter"):
                return int(f[0]) / n if f[0].isdigit() else None
    except OSError:
        pass
    return None


def syscalls(proc, path, n):
    """System calls of the contender's serving process(es), all threads, while exactly n
    keep-alive requests of path are answered over STRACE_CONNS connections: `strace -f -C -e
    status=failed` counts every call (the -c summary) and prints the failed ones, whose errno
    tells EAGAIN reads apart. Nothing is subtracted; totals are divided by n."""
    pids = traced_pids(proc.pid)
    threads = sum(status_kib(p, "Threads") for p in pids)
    untraced = untraced_syscalls(pids, proc.port, path, n)
    out = os.path.join(WORK, f"strace.{proc.name}")
    argv = ["strace", "-f", "-C", "-e", "status=failed", "-U", "name,calls,errors", "-qq", "-o", out]
    for pid in pids:
        argv += ["-p", str(pid)]
    err = open(os.path.join(WORK, f"strace.{proc.name}.err"), "w")
    st = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    try:
        end = time.monotonic() + 10
        while not traced_by(pids, st.pid):
            if st.poll() is not None or time.monotonic() > end:
                err.flush()
                print(f"{proc.name}: strace did not attach: "
                      + open(err.name).read().strip()[-300:], file=sys.stderr)
                return None
            time.sleep(0.02)
        t0 = time.monotonic()
        bad = keepalive_load(proc.port, path, n, STRACE_CONNS, max(120, n / 50))
        elapsed = time.monotonic() - t0
        time.sleep(0.3)  # the contender sees the closes and closes its side
    except SystemExit as e:  # the client gave up under strace: no figure, the benchmark goes on
        print(f"{proc.name}: under strace: {e}", file=sys.stderr)
        return None
    finally:
        st.send_signal(signal.SIGINT)  # strace detaches and writes the summary
        try:
            st.wait(30)
        except subprocess.TimeoutExpired:
            st.kill()
            st.wait()
    calls, errors, errnos = {}, {}, {}
    summary_rows = False
    for line in open(out):
        if not summary_rows:
            if line.split()[:3] == ["syscall", "calls", "errors"]:
                summary_rows = True
                continue
            m = FAILED_CALL.match(line)
            if m:
                e = errnos.setdefault(m.group(1), {})
                e[m.group(2)] = e.get(m.group(2), 0) + 1
            continue
        f = line.split()
        if not f or f[0].startswith("-") or f[0] == "total":
            continue
        calls[f[0]] = int(f[1])
        if len(f) > 2:
            errors[f[0]] = int(f[2])
    total = sum(calls.values())
    classes = {k: 0 for k in SYSCALL_CLASSES}
    classes["other"] = 0
    for name, c in calls.items():
        cls = next((k for k, names in SYSCALL_CLASSES.items() if name in names), "other")
        classes[cls] += c
    eagain_reads = sum(errnos.get(name, {}).get("EAGAIN", 0) for name in SYSCALL_CLASSES["read"])
    failed_reads = sum(errors.get(name, 0) for name in SYSCALL_CLASSES["read"])
    return {
        "requests": n, "connections": STRACE_CONNS, "non200": bad, "seconds": round(elapsed, 2),
        "pids": pids, "threads": threads, "calls": calls, "errors": errors, "errnos": errnos,
        "total": total, "per_request": total / n, "untraced_per_request": untraced,
        "classes_per_request": {k: v / n for k, v in classes.items()},
        "eagain_reads_per_request": eagain_reads / n,
        "failed_reads_per_request": failed_reads / n,
    }


def per_request(argv_for, path, tag, env=None):
    """(Ir(2N) - Ir(N)) / N: start-up and shutdown cancel out."""
    counts = []
    for n in (CALLGRIND_N, 2 * CALLGRIND_N):
        port = free_port()
        counts.append(callgrind(argv_for(port), port, get(path), n, tag, env))
    return (counts[1] - counts[0]) / CALLGRIND_N if all(counts) else None


def version(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    return (r.stdout + r.stderr).strip().splitlines()[0]


def main():
    global WORK
    WORK = tempfile.mkdtemp(prefix="gatelet-bench.")
    procs = []
    try:
        run(procs)
    finally:
        for p in procs:
            p.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(WORK, ignore_errors=True)


def run(procs):
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    www = os.path.join(WORK, "www")
    backend_files(www)
    sensor_file = os.path.join(WORK, "sensor.json")
    open(sensor_file, "wb").write(STATUS + b"\n")

    bport = free_port()
    open(os.path.join(WORK, "backend.conf"), "w").write(backend_conf(bport, www))
    procs.append(Proc("backend", ["nginx", "-c", f"{WORK}/backend.conf", "-p", WORK], bport, 1))

    def start(name):
        port = free_port()
        if name == "gatelet":
            conf = os.path.join(WORK, "gatelet.json")
            open(conf, "w").write(gatelet_conf(port, bport, sensor_file))
            env = dict(os.environ, RUST_LOG="error")
            return Proc(name, [GATELET, "run", "-c", conf], port, 0, env)
        if name == "nginx":
            open(os.path.join(WORK, "nginx.conf"), "w").write(nginx_conf(port, bport))
            return Proc(name, ["nginx", "-c", f"{WORK}/nginx.conf", "-p", WORK], port, 0)
        open(os.path.join(WORK, "haproxy.cfg"), "w").write(haproxy_conf(port, bport))
        return Proc(name, ["haproxy", "-db", "-f", f"{WORK}/haproxy.cfg"], port, 0)

    peers = ["gatelet", "nginx", "haproxy"]
    # Footprint on fresh processes: idle, then 1000 held connections each with one answer.
    memory = {}
    for name in ([] if QUICK else peers):
        p = start(name)
        idle = status_kib(p.pid, "VmRSS")
        anon, file_backed = status_kib(p.pid, "RssAnon"), status_kib(p.pid, "RssFile")
        conns, ok = hold(p.port, HELD, "/status.json")
        peak = status_kib(p.pid, "VmHWM")
        threads = status_kib(p.pid, "Threads")
        for s in conns:
            s.close()
        memory[name] = {"idle_kib": idle, "idle_anon_kib": anon, "idle_file_kib": file_backed,
                        "held_peak_kib": peak, "held_ok": ok, "threads": threads}
        p.stop()
        print(f"{name}: idle {idle} KiB, {HELD} held connections ({ok} answered): peak {peak} KiB",
              file=sys.stderr)

    live = {name: start(name) for name in peers}
    procs.extend(live.values())
    # Every (contender, path) runs in every round, interleaved.
    cases = [("1", name, "/status.json") for name in peers]
    if not QUICK:
        cases += [
            ("1json", "gatelet", "/json/status"),
            ("2", "gatelet", "/group"),
            ("3", "gatelet", "/sensor"),
            ("4", "gatelet", "/limited"),
        ]
    for name, p in live.items():  # warm-up: connections, caches, page faults
        wrk(p.port, "/status.json", max(CONCURRENCY), 1)
    results = {}
    for rnd in range(ROUNDS):
        for conns in CONCURRENCY:
            for scen, name, path in cases:
                r = measured(live[name], path, conns)
                results.setdefault((scen, name, conns), []).append(r)
                print(f"round {rnd + 1} c={conns} scenario {scen} {name}: {r['rps']:.0f} req/s "
                      f"p99 {r['p99_ms']} ms, {r['cpu_us_per_req']:.1f} us CPU/req"
                      + (f", {r['non2xx']} non-2xx" if r["non2xx"] else "")
                      + (f", {r['socket_errors']} socket errors" if r["socket_errors"] else ""),
                      file=sys.stderr)
    for name, p in live.items():
        memory.setdefault(name, {})["load_peak_kib"] = status_kib(p.pid, "VmHWM")
    # System calls per request, on the warm processes of the load runs: scenario 1's path, once
    # per round, contenders interleaved; the table shows the median run.
    runs = {}
    for rnd in range(0 if QUICK or not STRACE_N else ROUNDS):
        for name, p in live.items():
            runs.setdefault(name, []).append(syscalls(p, "/status.json", STRACE_N))
            r = runs[name][-1]
            if r:
                print(f"round {rnd + 1} {name}: {r['per_request']:.2f} system calls/request over "
                      f"{STRACE_N} requests ({r['seconds']} s under strace, {r['threads']} threads, "
                      f"{r['non200']} non-200): "
                      + ", ".join(f"{k} {v:.2f}" for k, v in r["classes_per_request"].items())
                      + f"; EAGAIN reads {r['eagain_reads_per_request']:.2f}; untraced (perf) "
                      + (f"{r['untraced_per_request']:.2f}" if r["untraced_per_request"] else "n/a"),
                      file=sys.stderr)
    traced = {}
    for name, rs in runs.items():
        ok = sorted((r for r in rs if r), key=lambda r: r["per_request"])
        untraced = [r["untraced_per_request"] for r in ok if r["untraced_per_request"]]
        traced[name] = {
            "median": ok[(len(ok) - 1) // 2] if ok else None,
            "range": [ok[0]["per_request"], ok[-1]["per_request"]] if ok else None,
            "untraced_median": statistics.median(untraced) if untraced else None,
            "untraced_range": [min(untraced), max(untraced)] if untraced else None,
            "runs": rs,
        }
    for p in list(live.values()):
        p.stop()
    if QUICK:
        t = summary({"runs": [{"scenario": s, "contender": n, "connections": c, "runs": r}
                              for (s, n, c), r in results.items()]})
        for (s, n, c), r in sorted(t.items(), key=lambda kv: (kv[0][2], kv[0][1])):
            print(f"c={c} {n}: {r['rps']:.0f} req/s, p99 {fmt(r['p99'])} ms, {r['cpu']:.1f} us CPU/req "
                  f"({r['cpu'] / t[(s, 'nginx', c)]['cpu']:.2f}x nginx), peak {mib(memory[n]['load_peak_kib'])}")
        return

    # Instructions per request, user space, repeatable.
    conf = os.path.join(WORK, "cg-gatelet.json")

    def gatelet_argv(port):
        # The sensor is read once at start and then hourly: under callgrind the run lasts
        # minutes, and a 1 s re-read would be charged to the requests (about 3k instructions
        # each, more the busier the machine).
        open(conf, "w").write(gatelet_conf(port, bport, sensor_file, "1h"))
        return [GATELET, "run", "-c", conf]

    def nginx_argv(port):
        open(os.path.join(WORK, "cg-nginx.conf"), "w").write(nginx_conf(port, bport))
        return ["nginx", "-c", f"{WORK}/cg-nginx.conf", "-p", WORK]

    def haproxy_argv(port):
        open(os.path.join(WORK, "cg-haproxy.cfg"), "w").write(haproxy_conf(port, bport))
        return ["haproxy", "-db", "-f", f"{WORK}/cg-haproxy.cfg"]

    quiet = dict(os.environ, RUST_LOG="error")
    instructions = {
        "gatelet": per_request(gatelet_argv, "/status.json", "gatelet", quiet),
        "gatelet (json)": per_request(gatelet_argv, "/json/status", "gateletjson", quiet),
        "nginx": per_request(nginx_argv, "/status.json", "nginx"),
        "haproxy": per_request(haproxy_argv, "/status.json", "haproxy"),
    }
    print(f"instructions per request: {instructions}", file=sys.stderr)

    report = {
        "started": started, "seconds": SECONDS, "rounds": ROUNDS, "connections": CONCURRENCY,
        "held": HELD, "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "cpu": cpu_model(), "cores": os.cpu_count(),
        "versions": {
            "gatelet": version([GATELET, "--version"]), "nginx": version(["nginx", "-v"]),
            "haproxy": version(["haproxy", "-v"]), "wrk": version(["wrk", "-v"]),
        },
        "binary_bytes": os.path.getsize(GATELET), "binary_static": not elf_interpreter(GATELET),
        "peer_binary_bytes": {"nginx": os.path.getsize(shutil.which("nginx")),
                              "haproxy": os.path.getsize(shutil.which("haproxy"))},
        "memory": memory, "instructions": instructions, "syscalls": traced,
        "runs": [{"scenario": s, "contender": n, "connections": c, "runs": r}
                 for (s, n, c), r in results.items()],
    }
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    json.dump(report, open(os.path.join(ROOT, "docs", "bench.json"), "w"), indent=1)
    write_markdown(report)
    chart(report)


def elf_interpreter(path):
    """Whether the ELF file asks for a dynamic loader (a PT_INTERP program header)."""
    import struct
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
            return True
        order = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack_from(order + "Q", head, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if struct.unpack(order + "I", f.read(4))[0] == 3:  # PT_INTERP
                return True
    return False


def git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def med(runs, key):
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def summary(report):
    table = {}
    for row in report["runs"]:
        runs = row["runs"]
        table[(row["scenario"], row["contender"], row["connections"])] = {
            "rps": med(runs, "rps"), "p50": med(runs, "p50_ms"), "p99": med(runs, "p99_ms"),
            "cpu": med(runs, "cpu_us_per_req"),
            "rps_range": (min(r["rps"] for r in runs), max(r["rps"] for r in runs)),
            "cpu_range": (min(r["cpu_us_per_req"] for r in runs), max(r["cpu_us_per_req"] for r in runs)),
            "bad": sum(r["non2xx"] + r["socket_errors"] for r in runs),
        }
    return table


NAMES = {
    "1": "1. proxy one JSON backend", "1json": "1. same, gatelet decoding and re-encoding JSON",
    "2": "2. aggregate 3 backends (`group`)", "3": "3. sensor reading from memory",
    "4": "4. scenario 1 + rate limits that admit",
}


def write_markdown(report):
    t = summary(report)
    mem, ins = report["memory"], report["instructions"]
    out = []
    w = out.append
    w("# gatelet benchmarks\n")
    w("Generated by `scripts/bench.sh` — do not edit by hand; rerun it. "
      f"Run {report['started']} at commit `{report['commit']}`"
      + (" (with uncommitted changes)" if report["dirty"] else "")
      + f" on {report['cores']} cores of an {report['cpu']}.\n")
    w(f"Versions: {report['versions']['gatelet']}; {report['versions']['nginx']}; "
      f"{report['versions']['haproxy']}; {report['versions']['wrk']}.\n")
    w("Set-up: the gateway under test is pinned to core 0; `wrk -t1` and the backend (nginx, one "
      "worker, serving a " f"{len(STATUS)}-byte JSON file) share core 1. nginx runs "
      "`worker_processes 1` with upstream keepalive, HAProxy `nbthread 1` with `http-reuse always`, "
      "gatelet its one thread with its default upstream pool (16 connections per host). "
      f"Each cell is the median of {report['rounds']} runs of {report['seconds']} s; contenders "
      "interleaved in every round. CPU/request is the gateway's own utime+stime from "
      "`/proc/PID/stat` divided by the requests completed in that window — the figure that tells "
      "gateways apart here, since requests/s saturates near what the shared core gives the backend.\n")
    w("![requests/s and p99 latency per contender](docs/bench.png)\n")
    w("## Scenario 1: proxy of one JSON backend\n")
    w("| connections | contender | requests/s | p50 ms | p99 ms | CPU µs/request | CPU range | vs nginx: req/s | CPU | p99 |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in report["connections"]:
        base = t[("1", "nginx", c)]
        for name in ("gatelet", "nginx", "haproxy"):
            r = t[("1", name, c)]
            w(f"| {c} | {name} | {r['rps']:.0f} | {fmt(r['p50'])} | {fmt(r['p99'])} | {r['cpu']:.1f} | "
              f"{r['cpu_range'][0]:.1f}–{r['cpu_range'][1]:.1f} | {r['rps'] / base['rps']:.2f}× | "
              f"{r['cpu'] / base['cpu']:.2f}× | {ratio(r['p99'], base['p99'])} |")
    w("")
    w("## Scenarios 2–4 (gatelet only, against its own scenario 1)\n")
    w("| connections | scenario | requests/s | p50 ms | p99 ms | CPU µs/request | vs scenario 1: req/s | CPU |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|")
    for c in report["connections"]:
        base = t[("1", "gatelet", c)]
        for s in ("1", "1json", "2", "3", "4"):
            r = t[(s, "gatelet", c)]
            w(f"| {c} | {NAMES[s]} | {r['rps']:.0f} | {fmt(r['p50'])} | {fmt(r['p99'])} | {r['cpu']:.1f} | "
              f"{r['rps'] / base['rps']:.2f}× | {r['cpu'] / base['cpu']:.2f}× |")
    bad = sum(r["bad"] for r in t.values())
    w(f"\nNon-2xx answers and socket errors over all runs: {bad}.\n")
    w("## Footprint\n")
    w("| | gatelet | nginx | HAProxy | gatelet / nginx |")
    w("|---|---:|---:|---:|---:|")
    g, n, h = mem["gatelet"], mem["nginx"], mem["haproxy"]
    w(f"| idle RSS | {mib(g['idle_kib'])} | {mib(n['idle_kib'])} | {mib(h['idle_kib'])} | {g['idle_kib'] / n['idle_kib']:.2f}× |")
    if "idle_anon_kib" in g:
        w(f"| idle RSS: anonymous (heap, stacks) | {mib(g['idle_anon_kib'])} | {mib(n['idle_anon_kib'])} | "
          f"{mib(h['idle_anon_kib'])} | |")
        w(f"| idle RSS: file-backed (binary, libc, shared) | {mib(g['idle_file_kib'])} | {mib(n['idle_file_kib'])} | "
          f"{mib(h['idle_file_kib'])} | |")
    w(f"| peak RSS, {report['held']} open connections (one request each) | {mib(g['held_peak_kib'])} | "
      f"{mib(n['held_peak_kib'])} | {mib(h['held_peak_kib'])} | {g['held_peak_kib'] / n['held_peak_kib']:.2f}× |")
    per = {k: (m["held_peak_kib"] - m["idle_kib"]) * 1024 / report["held"] for k, m in (("g", g), ("n", n), ("h", h))}
    w(f"| (peak − idle) / connection | {per['g']:,.0f} B | {per['n']:,.0f} B | {per['h']:,.0f} B | "
      f"{per['g'] / per['n']:.2f}× |")
    w(f"| peak RSS over the whole load run | {mib(g['load_peak_kib'])} | {mib(n['load_peak_kib'])} | "
      f"{mib(h['load_peak_kib'])} | {g['load_peak_kib'] / n['load_peak_kib']:.2f}× |")
    w(f"| threads | {g['threads']} | {n['threads']} | {h['threads']} | |")
    pb = report["peer_binary_bytes"]
    linkage = "static" if report.get("binary_static") else "+ shared libs (libc)"
    w(f"| binary | {report['binary_bytes'] / 1048576:.2f} MiB (stripped Rust, {linkage}) | "
      f"{pb['nginx'] / 1048576:.2f} MiB (+ shared libs) | {pb['haproxy'] / 1048576:.2f} MiB (+ shared libs) | |")
    w(f"\nAnswered during the {report['held']}-connection hold: gatelet {g['held_ok']}, nginx {n['held_ok']}, "
      f"HAProxy {h['held_ok']}.\n")
    w("## Instructions per request\n")
    w(f"`valgrind --tool=callgrind`, user space only, one keep-alive connection, "
      f"(Ir({2 * CALLGRIND_N}) − Ir({CALLGRIND_N})) / {CALLGRIND_N}: repeatable on a noisy machine, "
      "so this is the regression figure.\n")
    w("| contender | instructions/request |")
    w("|---|---:|")
    for k, v in ins.items():
        w(f"| {k} | {v:,.0f} |" if v else f"| {k} | n/a |")
    w("")
    if report.get("syscalls"):
        write_syscalls(w, report["syscalls"])
    w("## Targets\n")
    rows = []
    sc = report.get("syscalls") or {}
    gs, ns = (sc.get(k, {}).get("median") for k in ("gatelet", "nginx"))
    if gs and ns:
        rows.append(("system calls/request ≤ nginx + 1", f"{gs['per_request']:.2f} vs {ns['per_request']:.2f}",
                     gs["per_request"] <= ns["per_request"] + 1))
    for c in report["connections"]:
        gg, nn = t[("1", "gatelet", c)], t[("1", "nginx", c)]
        rows.append((f"CPU/request ≤ 1.0× nginx (c={c})", f"{gg['cpu'] / nn['cpu']:.2f}×", gg["cpu"] <= nn["cpu"]))
        rows.append((f"requests/s ≥ 1.0× nginx (c={c})", f"{gg['rps'] / nn['rps']:.2f}×", gg["rps"] >= nn["rps"]))
        if gg["p99"] and nn["p99"]:
            rows.append((f"p99 ≤ 1.2× nginx (c={c})", f"{gg['p99'] / nn['p99']:.2f}×", gg["p99"] <= 1.2 * nn["p99"]))
    if ins.get("gatelet"):
        rows.append(("instructions/request, pass-through ≤ 30k", f"{ins['gatelet']:,.0f}", ins["gatelet"] <= 30000))
    if ins.get("gatelet (json)"):
        rows.append(("instructions/request, decode + re-encode JSON < 90k", f"{ins['gatelet (json)']:,.0f}",
                     ins["gatelet (json)"] < 90000))
    rows.append(("threads: 1", str(g["threads"]), g["threads"] == 1))
    rows.append(("idle RSS ≤ 2 MiB", mib(g["idle_kib"]), g["idle_kib"] <= 2048))
    rows.append((f"peak RSS at {report['held']} connections ≤ 1.25× nginx",
                 f"{g['held_peak_kib'] / n['held_peak_kib']:.2f}×", g["held_peak_kib"] <= 1.25 * n["held_peak_kib"]))
    rows.append(("stripped binary ≤ 3 MiB", f"{report['binary_bytes'] / 1048576:.2f} MiB", report["binary_bytes"] <= 3 * 1048576))
    w("| target | measured | met |")
    w("|---|---:|---|")
    for name, value, ok in rows:
        w(f"| {name} | {value} | {'yes' if ok else '**no**'} |")
    w("")
    w("## Estimate for a Raspberry Pi (not measured)\n")
    w(pi_estimate(report, t))
    open(os.path.join(ROOT, "BENCHMARKS.md"), "w").write("\n".join(out) + "\n")


def write_syscalls(w, sc):
    w("## System calls per request\n")
    some = next((e["median"] for e in sc.values() if e["median"]), None)
    if not some:
        w("strace attached to no contender: no counts.\n")
        return
    n, conns = some["requests"], some["connections"]
    rounds = max(len(e["runs"]) for e in sc.values())
    w(f"`strace -f -C -e status=failed` attached to each contender's serving process, all its "
      "threads (nginx: its worker — here, with `master_process off`, its one process; HAProxy and "
      f"gatelet: their one process) while a Python client sends exactly {n:,} keep-alive GETs of "
      f"scenario 1's path (the no-op pass-through) over {conns} connections, one request in flight "
      f"on each, and reads every answer; the counts are the totals of strace's `-c` summary divided "
      f"by {n:,}, with nothing subtracted. The client's {conns} connections are opened and closed "
      f"inside the traced window, so accepting and closing them is counted but amortised over "
      f"about {n // conns:,} requests per connection; the upstream connections are the warm pools "
      f"left by the load runs. Run after the load runs, on the same processes, {rounds} time"
      f"{'s' if rounds != 1 else ''} per contender, contenders interleaved: the table gives the "
      "median run, with its breakdown, and the range of the totals over the runs.\n")
    w("Read with care: strace stops the process at every call, so the traced gateway runs several "
      "times slower than untraced, and how many requests wait at each wake-up depends on that and "
      "on whatever else the machine runs. Calls whose number follows the wake-ups (`epoll_wait`, "
      "`epoll_ctl`, reads that find nothing, and whatever a contender does once per wake-up) move "
      "with it, from run to run and against an untraced run; the figures compare contenders under "
      "one method. As a cross-check, *untraced* is the same client's run of the same number of "
      "requests on the same process without strace, just before each strace run, counted by "
      "`perf stat -e raw_syscalls:sys_enter` (all calls, no breakdown; median of the runs; n/a "
      "where perf is missing or not allowed).\n")
    w("| contender | threads | system calls/request | range | untraced | reads | of which EAGAIN | "
      "writes | epoll_wait | epoll_ctl | futex | timerfd_settime | other |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, e in sc.items():
        r = e["median"]
        if not r:
            w(f"| {name} | | n/a (strace did not attach) | | | | | | | | | | |")
            continue
        c = r["classes_per_request"]
        u = e["untraced_median"]
        spread = f"{e['range'][0]:.2f}–{e['range'][1]:.2f}" if len(e["runs"]) > 1 else "–"
        w(f"| {name} | {r['threads']} | **{r['per_request']:.2f}** | {spread} | "
          f"{f'{u:.2f}' if u else 'n/a'} | {c['read']:.2f} | "
          f"{r['eagain_reads_per_request']:.2f} | {c['write']:.2f} | {c['epoll_wait']:.2f} | "
          f"{c['epoll_ctl']:.2f} | {c['futex']:.2f} | {c['timerfd_settime']:.2f} | {c['other']:.2f} |")
    w("")
    w("Reads: " + ", ".join(f"`{x}`" for x in SYSCALL_CLASSES["read"]) + "; writes: "
      + ", ".join(f"`{x}`" for x in SYSCALL_CLASSES["write"]) + "; epoll_wait includes `epoll_pwait`. "
      "*Of which EAGAIN*: reads that returned EAGAIN, from the errno of each failed call strace "
      "printed. Per contender, from the median run, every system call per request, and the failed "
      "ones by errno:\n")
    for name, e in sc.items():
        r = e["median"]
        if not r:
            continue
        calls = sorted(r["calls"].items(), key=lambda kv: -kv[1])
        failed = sorted(((f"{call} {err}", k) for call, es in r["errnos"].items() for err, k in es.items()),
                        key=lambda kv: -kv[1])
        w(f"- **{name}** ({r['threads']} thread{'s' if r['threads'] != 1 else ''}, "
          f"{r['seconds']} s under strace"
          + (f", {r['non200']} answers not 200" if r["non200"] else "") + "): "
          + ", ".join(f"`{k}` {per(v, r['requests'])}" for k, v in calls)
          + ". Failed: " + (", ".join(f"`{k}` {per(v, r['requests'])}" for k, v in failed) or "none")
          + ".")
    w("")


def per(count, n):
    v = count / n
    return f"{v:.2f}" if v >= 0.01 else f"{v:.4f}"


def pi_estimate(report, t):
    ins = report["instructions"]["gatelet"]
    if not ins:
        return "No instruction count: no estimate.\n"
    # Kernel work is invisible to callgrind: scale by the share of system time measured at c=50.
    runs = [r for row in report["runs"] if (row["scenario"], row["contender"]) == ("1", "gatelet")
            and row["connections"] == min(report["connections"]) for r in row["runs"]]
    user_share = med(runs, "user_share")
    total = ins / user_share if user_share else ins * 2
    lines = [
        f"An **estimate**, labelled as such: gatelet runs {ins:,.0f} user-space x86-64 instructions "
        f"per proxied request (callgrind, above); the kernel's share is not counted by callgrind, so "
        f"the total is taken as user ÷ user-share of CPU time "
        + (f"({user_share:.0%} measured at c={min(report['connections'])})" if user_share else "(assumed 50%)")
        + f" ≈ {total:,.0f} instructions. Assuming ARM code needs 1.0–1.3× the x86 instruction count "
        "and the in-order cores retire 0.5–0.8 instructions per cycle on this branchy code:\n",
        "| board | core | one core at | estimated requests/s (one core) |",
        "|---|---|---:|---:|",
    ]
    for board, core, mhz in (("Pi Zero / Zero W", "ARM1176JZF-S", 1000), ("Pi 2 B", "Cortex-A7", 900)):
        lo = mhz * 1e6 * 0.5 / (total * 1.3)
        hi = mhz * 1e6 * 0.8 / (total * 1.0)
        lines.append(f"| {board} | {core} | {mhz} MHz | {lo:,.0f}–{hi:,.0f} |")
    lines.append("\nFor scale: KrakenD reported about 700 requests/s on a four-core Pi 2 (its 2018 "
                 "blog), i.e. on four cores where gatelet would use one. Measure on the board before "
                 "relying on these figures.\n")
    return "\n".join(lines)


def fmt(v):
    return "–" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def ratio(a, b):
    return "–" if not a or not b else f"{a / b:.2f}×"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def chart(report):
    t = summary(report)
    dat = os.path.join(WORK, "bench.dat")
    with open(dat, "w") as f:
        f.write("# contender " + " ".join(f"rps{c} p99_{c}" for c in report["connections"]) + "\n")
        for name in ("gatelet", "nginx", "haproxy"):
            f.write(name + " " + " ".join(
                f"{t[('1', name, c)]['rps']:.0f} {t[('1', name, c)]['p99'] or 0:.3f}"
                for c in report["connections"]) + "\n")
    png = os.path.join(ROOT, "docs", "bench.png")
    cs = report["connections"]
    plot_rps = ", ".join(f"'{dat}' using {2 + 2 * i}:xtic(1) title 'c={c}'" for i, c in enumerate(cs))
    plot_p99 = ", ".join(f"'{dat}' using {3 + 2 * i}:xtic(1) title 'c={c}'" for i, c in enumerate(cs))
    script = f"""set terminal pngcairo size 1000,420 font 'sans,10'
set output '{png}'
set multiplot layout 1,2 title 'Scenario 1: proxy of one JSON backend, one core each (median of {report['rounds']} runs, {report['started']})'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key top left
set yrange [0:*]
set title 'requests/s (higher is better)'
plot {plot_rps}
set title 'p99 latency, ms, log scale (lower is better)'
set logscale y
set yrange [*:*]
plot {plot_p99}
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


if __name__ == "__main__":
    main()
