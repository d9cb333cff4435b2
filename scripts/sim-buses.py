#!/usr/bin/env python3
"""Simulated buses for the fleet dashboard: each bus is an HTTP/1.1 server on its own loopback
port answering `/__health` exactly as a bus gatelet does (agents with status/age_ms/last_error,
circuits) and `/position` with `{"lat", "lon"}` drifting slowly. One asyncio process, no threads;
stops by itself after --seconds. Writes `{"bus-1": port, ...}` to --out once all listen.

    scripts/sim-buses.py --out ports.json bus-1:ok bus-4:stale bus-6:down bus-7:circuit

Kinds: ok; stale (the GPS stopped 14 s ago); down (the engine bridge's serial device is gone);
circuit (the passenger counter's circuit is open).
"""
import argparse, asyncio, json, math, os, time

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--seconds", type=float, default=600)
p.add_argument("buses", nargs="+", help="ID:KIND")
args = p.parse_args()
start = time.monotonic()


def agent(status="ok", age_ms=400, last_error=None, frames=1000):
    return {"status": status, "age_ms": age_ms, "frames_ok": frames, "frames_bad": 0, "reconnects": 0, "last_error": last_error}


def health(kind):
    up = int((time.monotonic() - start) * 1000)
    agents = {"gps": agent(age_ms=300 + up % 700), "engine": agent(age_ms=150), "cabin": agent(age_ms=900)}
    circuits = {}
    if kind == "stale":
        agents["gps"] = agent("stale", age_ms=14_000 + up, last_error=None)
    elif kind == "down":
        agents["engine"] = agent("down", age_ms=None, last_error="/dev/ttyUSB0: No such device (os error 19)", frames=0)
    elif kind == "circuit":
        circuits["GET /passengers -> /count"] = "open"
    bad = any(a["status"] != "ok" for a in agents.values()) or circuits
    return {"status": "degraded" if bad else "ok", "now": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "agents": agents, "circuits": circuits,
            "clock": {"synchronized": True, "why": "systemd-timesyncd reports synchronized"}}


def position(index):
    # Spread around a city centre, each bus drifting on its own small circle.
    t = time.monotonic() - start
    angle = index * 2.399 + t / 60
    return {"lat": round(52.370 + 0.03 * math.sin(index * 1.7) + 0.002 * math.sin(angle), 6),
            "lon": round(4.895 + 0.05 * math.cos(index * 2.3) + 0.003 * math.cos(angle), 6), "speed_kmh": 31}


def handler(index, kind):
    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                if target.startswith("/__health"):
                    doc, status = health(kind), "200 OK"
                elif target.startswith("/position"):
                    doc, status = position(index), "200 OK"
                else:
                    doc, status = {"message": "not found"}, "404 Not Found"
                body = json.dumps(doc).encode()
                writer.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (status.encode(), len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    return serve


async def main():
    ports = {}
    for index, spec in enumerate(args.buses):
        bus, _, kind = spec.partition(":")
        if kind not in ("ok", "stale", "down", "circuit"):
            raise SystemExit(f"{spec}: kind must be ok, stale, down or circuit")
        digits = "".join(c for c in bus if c.isdigit())
        server = await asyncio.start_server(handler(int(digits or index), kind), "127.0.0.1", 0)
        ports[bus] = server.sockets[0].getsockname()[1]
    with open(args.out + ".tmp", "w") as f:
        json.dump(ports, f)
    os.replace(args.out + ".tmp", args.out)
    await asyncio.sleep(args.seconds)


asyncio.run(main())
