#!/usr/bin/env python3
"""A loopback backend for the measurement scripts: python's threading HTTP server answering
every GET with one small JSON object (the vehicle status the benchmarks proxy).

As a program: `json_backend.py PORTFILE [--short] [--lifetime SECONDS]` writes the port it bound
to PORTFILE and serves until killed (or for SECONDS). As a module: `start()` serves from a
daemon thread and returns the server."""
import http.server
import socketserver
import sys
import threading

STATUS = b'{"fuel":71,"speed":42,"tyres":{"fl":32.1,"fr":31.9}}'
SHORT = b'{"fuel":71,"speed":42}'


def server(body=STATUS):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # nginx opens one upstream connection per concurrent request

    return S(("127.0.0.1", 0), H)


def start(body=STATUS):
    s = server(body)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


if __name__ == "__main__":
    args = sys.argv[1:]
    s = server(SHORT if "--short" in args else STATUS)
    if "--lifetime" in args:
        threading.Timer(float(args[args.index("--lifetime") + 1]), s.shutdown).start()
    with open(args[0], "w") as f:
        f.write(str(s.server_address[1]))
    s.serve_forever()
