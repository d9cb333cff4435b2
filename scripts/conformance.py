#!/usr/bin/env python3
"""gatelet's malformed-request corpus (tests/vectors/*.vec) sent to gatelet, nginx and HAProxy
side by side, each scored against the vector's `expect:` line the way tests/vectors.rs scores
gatelet; writes docs/conformance.md. Run through scripts/conformance.sh, which installs nginx
and HAProxy from Debian when missing and builds gatelet.

The three serve the same thing on 127.0.0.1, each from its own config file in a temporary
directory, so every vector's target means the same to all three:

- `/__health` answers 200 (gatelet: its built-in; nginx: `return 200`; HAProxy:
  `http-request return status 200`);
- `/__echo/...` reads the whole request body, then answers 200 (gatelet: its built-in echo;
  nginx: `proxy_pass` to a second server block of the same nginx that returns 200, since
  nginx's `return` answers before reading a body; HAProxy: `http-request wait-for-body`, then
  `return status 200`);
- anything else answers 404;
- the same limits where the peer has the knob: a 2 s request-head deadline, a 500 ms body
  inactivity limit (HAProxy: 2 s for the whole body), a 1 MiB body (HAProxy: a `deny` on
  Content-Length), a 16 KiB head (nginx: `large_client_header_buffers 4 16k`; HAProxy: its
  16 KiB buffer). gatelet runs with the config tests/vectors.rs gives it.

Each vector goes on its own connection: its bytes, then a `Connection: close` health check (the
sentinel), in one write. The answer is read until the server closes or DEADLINE seconds pass,
at most READ_CAP bytes. As in tests/vectors.rs, a vector passes when the server answered
exactly the statuses its file allows, in order, closed the connection, left no unparsed bytes,
answered the sentinel only if the file says `serves`, and answered a fresh health check
afterwards. tests/vectors.rs also sends each vector one byte per write and split after the head;
this comparison sends the one-write form only.

A second pass sends every vector again and half-closes the connection after the bytes (not for
vectors that expect a 408: their point is a client that goes silent). That measures how a server
treats a client that shuts its sending side, which is not what the corpus is about (nginx takes
it as an abort of a proxied request), so it is reported beside the main figures, not in them.

The corpus is gatelet's rules (docs/reliability.md): where RFC 9110/9112 allow a laxer answer, a
vector asks for gatelet's stricter one, so a peer that takes the laxer road fails that vector on
purpose. Every failing vector is marked with the rule it tests (RULES below).

Options: --out FILE (default docs/conformance.md; `-` prints it instead), --only SUBSTRING
(vectors whose name holds it), --servers gatelet,nginx,haproxy, --jobs N (8), --deadline SECONDS
(6: longer than nginx's 5 s lingering close), --no-half-close-pass. KEEP=1 keeps the work
directory (configs and logs).
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
import procs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
GATELET = os.path.join(TARGET, "release", "gatelet")
VECTORS = os.path.join(ROOT, "tests", "vectors")
SENTINEL = b"GET /__health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
READ_CAP = 1 << 20
NAMES = {"gatelet": "gatelet", "nginx": "nginx", "haproxy": "HAProxy"}
GROUPS = ["framing/smuggling", "chunked", "head syntax and limits", "host", "other"]

# What each vector tests, by name: (pattern, kind, rule); the first matching pattern wins.
# Kinds: "MUST", RFC 9110/9112 require the vector's answer; "invalid", the request breaks RFC
# 9112's grammar and the RFC names no answer (400 is the usual one); "choice", the RFC also
# allows a laxer answer (or asks for one) and the vector holds gatelet's stricter rule from
# docs/reliability.md; "valid", a well-formed request that must be served.
CL_TE = ("choice", "Content-Length with Transfer-Encoding: RFC 9112 6.1 lets a server reject "
         "the request or read it as chunked, and MUST close after answering; gatelet answers 400")
NOT_CHUNKED = ("MUST", "a Transfer-Encoding whose final coding is not `chunked`: RFC 9112 6.3, "
               "the server MUST answer 400 and close (6.1: SHOULD 501 for an unknown coding)")
RULES = [
    (r"^(cl-with-te|te-with-cl|te-with-cl-zero|empty-line-then-cl-with-te|pipelined-.*cl-with-te"
     r"|pipelined-then-smuggle-shape)$",) + CL_TE,
    (r"^gen-te-value-(before|after)-(sp|htab)-cl$",) + CL_TE,
    (r"^gen-te-value-(before|after)-(sp|htab)$", "valid",
     "whitespace around a field value is not part of it (RFC 9112 5.1)"),
    (r"^gen-te-value-(CHUNKED|Chunked)$", "valid", "transfer codings are case-insensitive"),
    (r"^gen-te-value-(chunked_|_chunked)$", "choice",
     "`chunked,` and `,chunked`: RFC 9110 5.6.1 says a recipient MUST ignore empty list "
     "elements, so both mean `chunked`; gatelet refuses any list in Transfer-Encoding"),
    (r"^gen-te-value-chunked_q_1$", "choice",
     "`chunked;q=1`: a parameter no one defines for chunked; gatelet accepts only `chunked`"),
    (r"^(gen-te-value-chunked__chunked|te-two-headers)$", "invalid",
     "chunked applied twice (RFC 9112 7: a sender MUST NOT)"),
    (r"^(gen-te-value-|te-xchunked|te-identity|te-chunked-gzip)",) + NOT_CHUNKED,
    (r"^te-gzip-chunked$", "choice",
     "a coding before chunked: RFC 9112 6.1, SHOULD 501 from a server that does not implement "
     "it; gatelet implements no coding but chunked"),
    (r"^te-http10", "choice",
     "Transfer-Encoding in HTTP/1.0: RFC 9112 6.1, the server MUST treat the framing as faulty "
     "and close after processing the message; gatelet answers 400"),
    (r"^gen-te-name-after-(sp|htab)", "MUST",
     "whitespace between field name and colon: RFC 9112 5.1, a server MUST answer 400"),
    (r"^gen-te-name-before-(sp|htab)", "choice",
     "a field line that starts with whitespace is obs-fold: RFC 9112 5.2, reject with 400 or "
     "replace it with SP (the Transfer-Encoding then belongs to the field above)"),
    (r"^gen-te-name-", "invalid", "a byte no field name may hold (RFC 9112 5: a token)"),
    (r"^(cl-duplicate-differing|cl-list-differing|cl-empty|cl-hex|cl-letters|cl-minus|cl-overflow"
     r"|cl-plus|cl-space-inside)$", "MUST",
     "an invalid Content-Length: RFC 9112 6.3, the server MUST answer 400 and close"),
    (r"^cl-too-big$", "choice", "gatelet's 1 MiB body limit: 413 and close"),
    (r"^body-short-of-cl$", "choice", "a body that stops: gatelet answers 408 and closes"),
    (r"^gen-chunk-.*-bare-lf-", "choice",
     "a bare LF ending a line of chunked framing: the chunked grammar asks for CRLF, RFC 9112 "
     "2.2 lets a recipient take a bare LF as a line end in the head, and lenient parsers "
     "accept it in chunks too; gatelet refuses it, since parsers that differ here disagree about "
     "where a body ends"),
    (r"^gen-chunk-.*-bare-cr-", "invalid", "a bare CR ending a line of chunked framing"),
    (r"^gen-chunk-ext-", None, None),  # decided by the expectation, in rule_of
    (r"^chunk-extension-long$", "choice", "gatelet's bound on a chunk extension"),
    (r"^chunk-(size-|data-longer|missing-crlf)", "invalid",
     "chunked framing outside RFC 9112 7.1's grammar: the body's end cannot be known"),
    (r"^obs-fold", "choice", "obs-fold: RFC 9112 5.2, reject with 400 or replace with SP"),
    (r"^(space-before-colon|tab-before-colon|pipelined-then-malformed)$", "MUST",
     "whitespace between field name and colon: RFC 9112 5.1, a server MUST answer 400"),
    (r"^first-header-whitespace$", "choice",
     "whitespace before the first field line: RFC 9112 2.2, reject or skip the line"),
    (r"^(bare-cr-in-value|bare-cr-line-end|nul-in-value)$", "choice",
     "a bare CR or a NUL in a field: RFC 9110 5.5 / RFC 9112 2.2, reject or replace it with SP"),
    (r"^del-in-value$", "choice",
     "DEL in a field value: invalid, but RFC 9110 5.5 lets a recipient keep it"),
    (r"^(request-line-double-space|request-line-tab)$", "choice",
     "RFC 9112 3 lets a server split the request line on any run of whitespace"),
    (r"^version-1-2$", "choice",
     "HTTP/1.2: RFC 9110 2.5 says a server SHOULD process it as HTTP/1.1; gatelet refuses it"),
    (r"^(version-0-9|version-2)$", "choice",
     "a version gatelet does not speak on this connection: 400 or 505"),
    (r"^(method-40-bytes|method-over-head-limit)$", "choice",
     "gatelet refuses a method longer than 32 bytes with 400"),
    (r"^(asterisk-get|connect)$", "choice",
     "`*` outside OPTIONS (400) and CONNECT (501): a gateway opens no tunnels"),
    (r"^(host-|empty-host|missing-host|two-hosts)", "MUST",
     "Host: RFC 9112 3.2, a server MUST answer 400 to a missing, repeated or invalid Host "
     "(an empty one: RFC 9110 4.2.1)"),
]


def rule_of(vec):
    for pattern, kind, rule in RULES:
        if re.search(pattern, vec["name"]):
            if kind is None:  # generated chunk extensions: the expectation says valid or not
                if vec["serves"]:
                    return "valid", "a chunk extension in RFC 9112 7.1.1's grammar"
                return ("choice", "a chunk extension outside RFC 9112 7.1.1's grammar: most "
                        "parsers skip to the line end (7.1.1: a recipient MUST ignore "
                        "unrecognized extensions); gatelet refuses it")
            return kind, rule
    if all(s < 400 for a in vec["answers"] for s in a):
        return "valid", "a well-formed request that must be served"
    return "invalid", "not a request line or field line of RFC 9112's grammar"


def group_of(name):
    n = name[4:] if name.startswith("gen-") else name
    if "host" in n and n not in ("http10-keep-alive",):
        return "host"
    if n.startswith("chunk") or n == "post-chunked":
        return "chunked"
    if (n.startswith(("cl-", "te-", "pipelined-", "body-short", "empty-line-then"))
            or n in ("get-with-body", "post-cl")):
        return "framing/smuggling"
    if (n.startswith(("method-", "request-line-", "target-", "version-", "header-", "nul-",
                      "obs-fold", "bare-cr", "del-", "space-before", "tab-before", "first-header"))
            or n in ("garbage", "empty-lines-before-request-line")):
        return "head syntax and limits"
    return "other"


# ---------------------------------------------------------------------------------------------
# The corpus, read as tests/vectors.rs reads it.

def unescape(text, name):
    """tests/vectors.rs's escapes (\\r \\n \\t \\\\ \\xHH) over the file's bytes."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i] != 0x5C:
            out.append(text[i])
            i += 1
            continue
        e = text[i + 1: i + 2]
        if e in (b"r", b"n", b"t", b"\\"):
            out += {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"\\": b"\\"}[e]
            i += 2
        elif e == b"x":
            out.append(int(text[i + 2: i + 4], 16))
            i += 4
        else:
            raise SystemExit(f"{name}: unknown escape \\{e!r}")
    return bytes(out)


def load(path):
    name = os.path.basename(path)[:-4]
    with open(path, "rb") as f:
        # str::lines in tests/vectors.rs: split at LF, drop a CR before it
        lines = [line[:-1] if line.endswith(b"\r") else line for line in f.read().split(b"\n")]
    if lines and lines[-1] == b"":
        lines.pop()
    comments = []
    while lines and lines[0].startswith(b"#"):
        comments.append(lines.pop(0)[1:].decode("utf-8", "replace").strip())
    if not lines or not lines[0].startswith(b"expect:"):
        raise SystemExit(f"{name}: no expect: line after the comments")
    words = lines.pop(0)[len(b"expect:"):].decode().split()
    serves = {"serves": True, "close": False}[words.pop()]
    answers = [[int(s) for s in w.split("|")] for w in words]
    comment = " ".join(c for c in comments if not c.startswith("generated by"))
    return {"name": name, "bytes": unescape(b"".join(lines), name), "answers": answers,
            "serves": serves, "comment": comment,
            "expect": " ".join(words + ["serves" if serves else "close"])}


def corpus(only):
    files = sorted(f for f in os.listdir(VECTORS) if f.endswith(".vec"))
    return [load(os.path.join(VECTORS, f)) for f in files if only in f]


# ---------------------------------------------------------------------------------------------
# Sending and scoring, as tests/vectors.rs does.

def parse_response(buf):
    """(status, bytes used) of the response at the front of buf, or None while incomplete:
    tests/common/mod.rs's parse_response."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = buf[:head_end].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        return None
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    start = head_end + 4
    if "content-length" in headers and headers["content-length"].isdigit():
        n = int(headers["content-length"])
        return (status, start + n) if len(buf) >= start + n else None
    if headers.get("transfer-encoding", "").lower() == "chunked":
        at = start
        while True:
            end = buf.find(b"\r\n", at)
            if end < 0:
                return None
            try:
                size = int(buf[at:end].decode("latin-1").strip(), 16)
            except ValueError:
                return None
            at = end + 2
            if size == 0:
                return (status, at + 2) if len(buf) >= at + 2 else None
            if len(buf) < at + size + 2:
                return None
            at += size + 2
    return status, start


def statuses(raw):
    out = []
    while (r := parse_response(raw)) is not None:
        out.append(r[0])
        raw = raw[r[1]:]
    return out, len(raw)


def exchange(port, data, half_close, deadline):
    """Sends data in one write on a new connection, half-closes if asked, and reads until the
    server closes or the deadline passes: (bytes read, closed by the server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=deadline)
    end = time.monotonic() + deadline
    out, closed = bytearray(), False
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:  # the server may close before it has read everything: expected
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        while len(out) < READ_CAP:
            left = end - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except OSError:  # the deadline
                break
            if not chunk:
                closed = True
                break
            out += chunk
    finally:
        s.close()
    return bytes(out), closed


def health(port, deadline):
    raw, _ = exchange(port, SENTINEL, False, deadline)
    got, _ = statuses(raw)
    return got[0] if got else None


def run(port, vec, deadline, half_close):
    """One vector on one server: a dict with what happened and whether it passed. half_close:
    shut the sending side after the bytes, except where the vector expects a 408 (a client that
    goes silent: an end of stream is not silence)."""
    half_close = half_close and 408 not in {s for a in vec["answers"] for s in a}
    raw, closed = exchange(port, vec["bytes"] + SENTINEL, half_close, deadline)
    got, left = statuses(raw)
    want = vec["answers"] + ([[200]] if vec["serves"] else [])
    ok = (closed and left == 0 and len(got) == len(want)
          and all(s in allowed for s, allowed in zip(got, want)))
    after = health(port, deadline)
    return {"ok": ok and after == 200, "got": got, "closed": closed, "left": left,
            "after": after, "observed": observed(vec, got, closed, left, after)}


def observed(vec, got, closed, left, after):
    """What a server did, in the expect: line's words: the statuses, then `serves` when the
    sentinel (sent last) was answered too and the connection closed, `close` when it closed
    without that."""
    words = lambda ss: " ".join(map(str, ss)) or "no answer"
    if closed and len(got) > len(vec["answers"]) and got[-1] == 200:
        text = f"{words(got[:-1])} serves"
    elif closed:
        text = f"{words(got)} close"
    else:
        text = f"{words(got)}, still open at the deadline"
    if left:
        text += f", {left} bytes unparsed"
    if after != 200:
        text += f"; health afterwards {after or 'unanswered'}"
    return text


# ---------------------------------------------------------------------------------------------
# The three servers.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gatelet_conf(work, port):
    # The config tests/vectors.rs runs the corpus with, on a port of its own.
    conf = {"version": 3, "listen_ip": "127.0.0.1", "port": port, "echo_endpoint": True,
            "read_header_timeout": "2s", "read_timeout": "3s",
            "extra_config": {"gatelet/server": {"body_idle_timeout": "500ms"}}, "endpoints": []}
    path = os.path.join(work, "gatelet.json")
    with open(path, "w") as f:
        json.dump(conf, f)
    return [GATELET, "run", "-c", path]


def nginx_conf(work, port):
    inner = free_port()
    path = os.path.join(work, "nginx.conf")
    with open(path, "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1; pid {work}/nginx.pid;
error_log {work}/nginx.err warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body; proxy_temp_path {work}/nginx-proxy;
  fastcgi_temp_path {work}/nginx-fastcgi; uwsgi_temp_path {work}/nginx-uwsgi;
  scgi_temp_path {work}/nginx-scgi;
  client_header_timeout 2s; client_body_timeout 500ms; keepalive_timeout 30s;
  client_max_body_size 1m; large_client_header_buffers 4 16k;
  server {{
    listen 127.0.0.1:{port};
    location = /__health {{ return 200; }}
    location /__echo/ {{ proxy_pass http://127.0.0.1:{inner}; }}
    location / {{ return 404; }}
  }}
  server {{ listen 127.0.0.1:{inner}; location / {{ return 200; }} }}
}}
""")
    return ["nginx", "-e", f"{work}/nginx.err", "-c", path, "-p", work]


def haproxy_conf(work, port):
    path = os.path.join(work, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 256
defaults
  mode http
  timeout connect 3s
  timeout client 30s
  timeout http-request 2s
  timeout http-keep-alive 30s
frontend f
  bind 127.0.0.1:{port}
  http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt 1048576 }}
  http-request wait-for-body time 2s
  http-request return status 200 if {{ path /__health }} || {{ path_beg /__echo/ }}
  http-request return status 404
""")
    return ["haproxy", "-db", "-f", path]


CONFS = {"gatelet": gatelet_conf, "nginx": nginx_conf, "haproxy": haproxy_conf}


class Server:
    def __init__(self, name, work):
        self.name, self.port = name, free_port()
        argv = CONFS[name](work, self.port)
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        env = dict(os.environ, RUST_LOG="error")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  stdin=subprocess.DEVNULL)
        end = time.monotonic() + 15
        while True:
            if self.p.poll() is not None:
                self.log.flush()
                raise SystemExit(f"{name} exited with {self.p.returncode}: "
                                 + open(self.log.name).read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > end:
                    raise SystemExit(f"{name}: nothing listens on {self.port} after 15 s")
                time.sleep(0.05)

    def stop(self):
        procs.stop(self.p)
        self.log.close()


def self_check(server, deadline):
    """The three mean the same by each target: refuse to compare otherwise."""
    cases = [(b"GET /__health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
             (b"POST /__echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close"
              b"\r\n\r\nhi", 200),
             (b"GET /nothing/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404)]
    for data, want in cases:
        got, _ = statuses(exchange(server.port, data, False, deadline)[0])
        if got != [want]:
            raise SystemExit(f"{server.name}: {data.split(b' ')[1].decode()} answered {got}, not "
                             f"[{want}]: the configs do not serve the same thing")


def version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    text = (p.stdout + p.stderr).strip().splitlines()
    return text[0] if text else "?"


# ---------------------------------------------------------------------------------------------
# Report.

def report(vectors, results, half, servers, meta):
    total = len(vectors)
    passed = {s: sum(results[s][v["name"]]["ok"] for v in vectors) for s in servers}
    rules = {v["name"]: rule_of(v) for v in vectors}
    groups = {v["name"]: group_of(v["name"]) for v in vectors}
    failing = [v for v in vectors if any(not results[s][v["name"]]["ok"] for s in servers)]
    out = []
    w = out.append
    w("# HTTP/1.1 conformance on gatelet's own corpus\n")
    w(f"_Generated by `{meta['command']}` on {meta['date']}; do not edit. Versions: "
      f"{meta['versions']}. {meta['seconds']:.0f} s on this machine._\n")
    w(f"Every vector in `tests/vectors/` ({total}: the hand-written ones and those "
      "`scripts/gen-vectors.py` writes) sent once to each server, in one write followed by a "
      "`Connection: close` health check, and scored against its `expect:` line the way "
      "`tests/vectors.rs` scores gatelet: the exact statuses, then a closed connection, with the "
      "health check answered only where the vector says `serves`, and a fresh health check "
      "answered afterwards. The servers, their configs and the scoring are described in "
      "[`scripts/conformance.py`](../scripts/conformance.py).\n")
    w("**The corpus is gatelet's rules** ([reliability rules](reliability.md#framing-rules-rfc-9112--each-is-a-test-vector)). "
      "Where RFC 9110/9112 allow a laxer answer (process `Content-Length` with "
      "`Transfer-Encoding` as chunked, replace a bare CR or NUL with a space, ignore a malformed "
      "chunk extension, accept a bare LF), a vector asks for gatelet's stricter one, so a peer "
      "that takes the laxer road fails it on purpose. The **kind** of each vector says which: "
      "`MUST` where the RFC requires the vector's answer (or the close), `invalid` where the "
      "request breaks RFC 9112's grammar and the RFC names no answer (400 is the usual one), "
      "`choice` where the RFC allows a laxer answer and the vector holds gatelet's stricter "
      "rule, `valid` where a well-formed request must be served. The kinds are assigned in the "
      "script (`RULES`), with the RFC section for each.\n")
    w("| | " + " | ".join(NAMES[s] for s in servers) + " |")
    w("|---|" + "---:|" * len(servers))
    w("| vectors passed | " + " | ".join(f"**{passed[s]} / {total}**" for s in servers) + " |")
    for kind in ("MUST", "invalid", "choice", "valid"):
        ks = [v for v in vectors if rules[v["name"]][0] == kind]
        if ks:
            w(f"| of which `{kind}` ({len(ks)}) | " + " | ".join(
                f"{sum(results[s][v['name']]['ok'] for v in ks)}" for s in servers) + " |")
    for g in GROUPS:
        gs = [v for v in vectors if groups[v["name"]] == g]
        if gs:
            w(f"| {g} ({len(gs)}) | " + " | ".join(
                f"{sum(results[s][v['name']]['ok'] for v in gs)}" for s in servers) + " |")
    gen = [v for v in vectors if v["name"].startswith("gen-")]
    if gen:
        w(f"\n{len(gen)} of the {total} vectors are generated variants (`gen-*`: "
          f"{sum(groups[v['name']] == 'chunked' for v in gen)} of chunked framing, the others of "
          "`Transfer-Encoding`), so a rule with many variants weighs more in the totals than a "
          "hand-written vector: read the failures below by rule, not only the totals.")
    w("")
    w("## Vectors a server fails\n")
    if not failing:
        w("None.\n")
    w("Each row is a vector at least one server fails: what the vector expects, and what each "
      "server did in the same words (`serves`: the health check behind the vector was answered; "
      "`close`: the connection closed without answering it); ✓ where the server passed. "
      "Rows with the same expectation, kind and answers are folded into one, with a count.\n")
    for g in GROUPS:
        gs = [v for v in failing if groups[v["name"]] == g]
        if not gs:
            continue
        w(f"### {g}\n")
        w("| vectors | kind | expect | " + " | ".join(NAMES[s] for s in servers) + " |")
        w("|---|---|---|" + "---|" * len(servers))
        rows = {}
        for v in gs:
            cells = tuple("✓" if results[s][v["name"]]["ok"] else results[s][v["name"]]["observed"]
                          for s in servers)
            key = (family(v["name"]), rules[v["name"]], v["expect"], cells)
            rows.setdefault(key, []).append(v)
        for (fam, (kind, rule), expect, cells), vs in rows.items():
            if len(vs) == 1:
                label = f"`{vs[0]['name']}`: " + vs[0]["comment"].replace("`", "\\`")
            else:
                label = f"{len(vs)} × `{fam}`: " + ", ".join(
                    f"`{v['name'][len(fam) - 1:] if fam.endswith('*') else v['name']}`"
                    for v in vs)
            w(f"| {cell(label)} | {kind} | `{cell(expect)}` | " + " | ".join(map(cell, cells)) + " |")
        w("")
        for kind, rule in sorted({rules[v["name"]] for v in gs}):
            w(f"- {kind}: {rule}.")
        w("")
    if half:
        w("## With a half-close\n")
        w("The same vectors again, the connection half-closed after the bytes (except the one "
          "that expects a 408). RFC 9112 9.6 lets a client do this and still expect its "
          "answers; this pass measures how a server treats it, not the corpus's rules, so it "
          "is kept out of the figures above. Whether a server sees the end of the stream before "
          "it answers depends on timing, so these figures move by a few vectors between runs.\n")
        w("| | " + " | ".join(NAMES[s] for s in servers if s in half) + " |")
        w("|---|" + "---:|" * len(half))
        w("| vectors passed | " + " | ".join(
            f"{sum(half[s][v['name']]['ok'] for v in vectors)} / {total}"
            for s in servers if s in half) + " |")
        w("")
        for s in servers:
            if s not in half:
                continue
            lost = [v for v in vectors if results[s][v["name"]]["ok"] and not half[s][v["name"]]["ok"]]
            won = [v for v in vectors if not results[s][v["name"]]["ok"] and half[s][v["name"]]["ok"]]
            for what, vs in (("fails with a half-close only", lost),
                             ("passes with a half-close only", won)):
                if vs:
                    seen = {}
                    for v in vs:
                        seen.setdefault(half[s][v["name"]]["observed"], []).append(v["name"])
                    w(f"- {NAMES[s]} {what}: {len(vs)} vector{'s' if len(vs) > 1 else ''}; " + "; ".join(
                        f"{len(ns)} answered `{o}` (" + ", ".join(f"`{n}`" for n in ns[:4])
                        + (f" and {len(ns) - 4} more" if len(ns) > 4 else "") + ")"
                        for o, ns in seen.items()) + ".")
        w("")
    w("## Rerun\n")
    w("```sh\nscripts/conformance.sh            # installs nginx and HAProxy if missing, builds "
      "gatelet, rewrites this file\npython3 scripts/conformance.py --out - --only chunk-ext   "
      "# a subset, printed only (servers on PATH, gatelet built)\n```\n")
    return "\n".join(out)


def cell(text):
    """Text for a Markdown table cell: GitHub splits cells at every `|`, code spans too."""
    return text.replace("|", "\\|")


def console(vectors, results, servers):
    """The terminal's table: passed per server and group, then each server's failures."""
    total = len(vectors)
    lines = [f"{'':30}" + "".join(f"{NAMES[s]:>12}" for s in servers)]
    lines.append(f"{'passed':30}" + "".join(
        f"{sum(results[s][v['name']]['ok'] for v in vectors)}/{total}".rjust(12) for s in servers))
    for g in GROUPS:
        gs = [v for v in vectors if group_of(v["name"]) == g]
        if gs:
            lines.append(f"  {g + f' ({len(gs)})':28}" + "".join(
                f"{sum(results[s][v['name']]['ok'] for v in gs):>12}" for s in servers))
    for s in servers:
        failed = [v for v in vectors if not results[s][v["name"]]["ok"]]
        if not failed:
            continue
        lines.append(f"\n{NAMES[s]} fails {len(failed)}:")
        for g in GROUPS:
            fams = {}
            for v in failed:
                if group_of(v["name"]) == g:
                    fams.setdefault(family(v["name"]), []).append(v)
            if fams:
                lines.append(f"  {g}: " + ", ".join(
                    f"{f} ({rule_of(vs[0])[0]})" if len(vs) == 1 and f == vs[0]["name"]
                    else f"{len(vs)} x {f}" for f, vs in fams.items()))
    return "\n".join(lines)


def family(name):
    """The generated vectors fold by the part of their name before the case: gen-chunk-ext-*."""
    for prefix in ("gen-chunk-ext-trailer-", "gen-chunk-ext-", "gen-chunk-plain-",
                   "gen-te-name-", "gen-te-value-"):
        if name.startswith(prefix):
            return prefix + "*"
    return name


def run_all(port, vectors, args, half_close):
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {v["name"]: pool.submit(run, port, v, args.deadline, half_close)
                   for v in vectors}
        return {n: f.result() for n, f in futures.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "conformance.md"))
    ap.add_argument("--only", default="")
    ap.add_argument("--servers", default="gatelet,nginx,haproxy")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--deadline", type=float, default=6.0)
    ap.add_argument("--no-half-close-pass", dest="half_close_pass", action="store_false")
    args = ap.parse_args()
    servers = args.servers.split(",")
    for s in servers:
        if s not in CONFS:
            raise SystemExit(f"unknown server {s}: gatelet, nginx, haproxy")
    vectors = corpus(args.only)
    if not vectors:
        raise SystemExit("no vector matches")
    started, t0 = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    work = tempfile.mkdtemp(prefix="gatelet-conformance.")
    results, half = {}, {}
    try:
        for name in servers:
            server = Server(name, work)
            try:
                self_check(server, args.deadline)
                results[name] = run_all(server.port, vectors, args, False)
                if args.half_close_pass:
                    half[name] = run_all(server.port, vectors, args, True)
            finally:
                server.stop()
            ok = sum(r["ok"] for r in results[name].values())
            line = f"{NAMES[name]}: {ok} / {len(vectors)} vectors as expected"
            if name in half:
                line += f" ({sum(r['ok'] for r in half[name].values())} with a half-close)"
            print(line, file=sys.stderr)
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"configs and logs kept in {work}", file=sys.stderr)
    # The commit measured; "-dirty" when what builds gatelet or runs this differs from it.
    git = ["git", "-C", ROOT]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    if commit and subprocess.run(git + ["diff", "--quiet", "HEAD", "--", "src", "Cargo.toml",
                                        "Cargo.lock", "tests", "scripts"]).returncode:
        commit += "-dirty"
    versions = []
    for s in servers:
        v = {"gatelet": lambda: version([GATELET, "--version"]) + (f" ({commit})" if commit else ""),
             "nginx": lambda: version(["nginx", "-v"]).replace("nginx version: ", ""),
             "haproxy": lambda: "HAProxy " + version(["haproxy", "-v"]).split()[2]}[s]()
        versions.append(v)
    meta = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "versions": "; ".join(versions),
            "seconds": time.monotonic() - t0,
            "command": "scripts/conformance.sh" + (f" (--only {args.only})" if args.only else "")}
    text = report(vectors, results, half, servers, meta)
    print(console(vectors, results, servers))
    if args.out != "-":
        with open(args.out, "w") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(args.out)}", file=sys.stderr)
    else:
        print(text)


if __name__ == "__main__":
    main()
