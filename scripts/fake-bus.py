#!/usr/bin/env python3
"""A fake bus for config/bus.json, on any Linux box: a GPS on a pseudo-terminal speaking NMEA
0183 (GGA + RMC, 1 Hz), an engine-controller bridge serving JSON lines over TCP, a cabin
temperature file in millidegrees (like sysfs), and a passenger counter pushing JSON lines into
gatelet's listen socket. Send SIGUSR1 to unplug the GPS for 3 s and plug it back in (a new tty
behind the same symlink, as udev does). Loopback only; stops after --seconds.

    scripts/fake-bus.py [--dir /tmp/gatelet-bus] [--engine-port 7101] [--seconds 3600]
"""
import argparse, json, math, os, signal, socket, threading, time

p = argparse.ArgumentParser()
p.add_argument("--dir", default="/tmp/gatelet-bus")
p.add_argument("--engine-port", type=int, default=7101, help="0 = any free port (written to DIR/engine.port)")
p.add_argument("--seconds", type=float, default=3600)
args = p.parse_args()
os.makedirs(args.dir, exist_ok=True)
stop = time.time() + args.seconds


def nmea(body):
    sum_ = 0
    for c in body.encode():
        sum_ ^= c
    return f"${body}*{sum_:02X}\r\n".encode()


def coord(value, width):
    deg = int(abs(value))
    minutes = (abs(value) - deg) * 60
    return f"{deg:0{width}d}{minutes:07.4f}"


class Gps:
    """The tty end the device writes to; replaced on a replug."""

    def __init__(self):
        self.lock = threading.Lock()
        self.master = None
        self.link = os.path.join(args.dir, "gps")
        self.plug()

    def plug(self):
        master, slave = os.openpty()
        name = os.ttyname(slave)
        os.close(slave)
        tmp = self.link + ".new"
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(name, tmp)
        os.replace(tmp, self.link)
        with self.lock:
            self.master = master

    def unplug(self):
        with self.lock:
            if self.master is not None:
                os.close(self.master)
                self.master = None

    def write(self, data):
        with self.lock:
            if self.master is not None:
                try:
                    os.write(self.master, data)
                except OSError:
                    pass


gps = Gps()


def replug(*_):
    def run():
        gps.unplug()
        time.sleep(3)
        gps.plug()
    threading.Thread(target=run, daemon=True).start()


signal.signal(signal.SIGUSR1, replug)


def gps_loop():
    t0 = time.time()
    while time.time() < stop:
        t = time.time() - t0
        lat, lon = 52.5200 + 0.001 * math.sin(t / 60), 13.4050 + 0.001 * math.cos(t / 60)
        now = time.gmtime()
        hms, dmy = time.strftime("%H%M%S", now), time.strftime("%d%m%y", now)
        la, lo = coord(lat, 2), coord(lon, 3)
        gps.write(nmea(f"GPGGA,{hms},{la},N,{lo},E,1,09,0.9,34.0,M,39.0,M,,"))
        gps.write(nmea(f"GPRMC,{hms},A,{la},N,{lo},E,{18 + 4 * math.sin(t / 10):.1f},087.0,{dmy},,"))
        time.sleep(1)


def engine_loop():
    server = socket.create_server(("127.0.0.1", args.engine_port))
    with open(os.path.join(args.dir, "engine.port.tmp"), "w") as f:
        f.write(str(server.getsockname()[1]))
    os.replace(os.path.join(args.dir, "engine.port.tmp"), os.path.join(args.dir, "engine.port"))
    server.settimeout(1)
    while time.time() < stop:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        threading.Thread(target=engine_client, args=(conn,), daemon=True).start()


def engine_client(conn):
    fuel = 71.0
    with conn:
        while time.time() < stop:
            fuel = max(0.0, fuel - 0.01)
            record = {"fuel_pct": round(fuel, 2), "speed_kmh": 42, "tyres_psi": {"fl": 32.1, "fr": 31.9}}
            try:
                conn.sendall((json.dumps(record) + "\n").encode())
            except OSError:
                return
            time.sleep(1)


def cabin_loop():
    path = os.path.join(args.dir, "cabin_temp")
    while time.time() < stop:
        with open(path + ".tmp", "w") as f:
            f.write(f"{21500 + int(500 * math.sin(time.time() / 30))}\n")
        os.replace(path + ".tmp", path)
        time.sleep(2)


def passenger_loop():
    path, on_board = os.path.join(args.dir, "in.sock"), 17
    while time.time() < stop:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            while time.time() < stop:
                on_board = max(0, on_board + (1 if int(time.time()) % 3 else -1))
                s.sendall((json.dumps({"door": "front", "on_board": on_board}) + "\n").encode())
                time.sleep(2)
        except OSError:
            time.sleep(1)


for loop in (gps_loop, engine_loop, cabin_loop, passenger_loop):
    threading.Thread(target=loop, daemon=True).start()
print(f"fake bus in {args.dir} (gps -> {os.path.realpath(gps.link)}); SIGUSR1 replugs the GPS", flush=True)
while time.time() < stop:
    time.sleep(0.2)
