"""Process helpers the measurement scripts share (bench.py, conformance.py, soak.py)."""

import signal
import subprocess


def stop(p, wait=10):
    """SIGTERM, then SIGKILL if `p` has not exited after `wait` seconds; reaps it either way."""
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
