#!/usr/bin/env python3
"""Quick local check of the WebSocket ↔ TCP bridge against direct TCP (not a target run).

Starts a TCP echo server (child process) and the ``bridge`` role in front of it,
then measures, like the shared harness's ``tcp`` suite:

- bulk: 1 MiB binary messages, 8 MiB in flight, echoed back — MB/s of payload
  returned, through the bridge and over a direct TCP connection;
- rtt: strictly sequential 64-byte round trips per second, both ways.

The client is a raw socket speaking just enough WebSocket (frames masked with
the all-zero key, so the client spends no time XOR-ing) and runs in this
process; the echo server and the bridge run in their own processes.  On a
shared 2-core machine the figures are noisy: compare ratios from one run.

    .venv/bin/python bench/bridge_micro.py [--seconds 3] [--profile out.prof]

``--profile`` runs the bridge under cProfile (twistd's ``--profiler``) and
prints the top functions by own time after the run.
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWISTD = str(Path(sys.executable).with_name("twistd"))
MiB = 1 << 20
WINDOW = 8

ECHO_SERVER = r"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(64); print(s.getsockname()[1], flush=True)
def run(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(262144)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=run, args=(c,), daemon=True).start()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


# ------------------------------------------------------------------ clients

class Direct:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, payload: bytes) -> None:
        self.sock.sendall(payload)

    def recv_some(self) -> int:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        return len(data)


class Ws:
    """Client frames with a zero mask; server frames parsed for their payload length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Protocol: binary\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(65536)
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buf = bytearray(rest)
        self.left = 0  # payload bytes of the current frame still to come

    def send(self, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x82, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x82, 0xFE, n)
        else:
            head = struct.pack("!BBQ", 0x82, 0xFF, n)
        self.sock.sendall(head + b"\0\0\0\0" + payload)

    def recv_some(self) -> int:
        """Payload bytes of data frames in the next socket read (parsed by offset, one trim per read)."""
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        if self.left >= len(data) and not self.buf:
            self.left -= len(data)
            return len(data)
        buf = self.buf
        buf += data
        got = 0
        i = 0
        while True:
            if self.left:
                take = min(self.left, len(buf) - i)
                i += take
                self.left -= take
                got += take
                if self.left:
                    break
            if len(buf) - i < 2:
                break
            b1 = buf[i + 1] & 0x7F
            hl = 2 + (2 if b1 == 126 else 8 if b1 == 127 else 0)
            if len(buf) - i < hl:
                break
            n = b1 if b1 < 126 else struct.unpack("!H" if b1 == 126 else "!Q", buf[i + 2:i + hl])[0]
            if buf[i] & 0x0F >= 8:
                raise EOFError(f"control frame {buf[i] & 0x0F}")
            i += hl
            self.left = n
        del buf[:i]
        return got


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bulk(client, seconds: float, size: int = MiB) -> float:
    payload = b"a" * size
    lock = threading.Condition()
    state = {"outstanding": 0, "received": 0, "stop": False}

    def sender():
        while True:
            with lock:
                while state["outstanding"] > (WINDOW - 1) * size and not state["stop"]:
                    lock.wait()
                if state["stop"]:
                    return
                state["outstanding"] += size
            client.send(payload)

    t = threading.Thread(target=sender, daemon=True)
    t0 = time.perf_counter()
    t.start()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        n = client.recv_some()
        with lock:
            state["received"] += n
            state["outstanding"] -= n
            lock.notify()
    dt = time.perf_counter() - t0
    with lock:
        state["stop"] = True
        lock.notify()
    return state["received"] / dt / 1e6


def rtt(client, seconds: float, size: int = 64) -> float:
    payload = b"a" * size
    count = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        client.send(payload)
        got = 0
        while got < size:
            got += client.recv_some()
        count += 1
    return count / (time.perf_counter() - t0)


# ---------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--modes", default="bulk,rtt", help="which measurements (bulk, rtt)")
    ap.add_argument("--profile", help="write the bridge's cProfile stats here and print the top entries")
    a = ap.parse_args()

    echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    echo_port = int(echo.stdout.readline())
    port = free_port()
    cmd = [TWISTD, "-n", "--pidfile="]
    if a.profile:
        cmd += ["--profile", os.path.abspath(a.profile), "--profiler", "cprofile", "--savestats"]
    cmd += ["cocalcproxy", "bridge", "--listen", f"tcp:{port}:interface=127.0.0.1",
            "--target", f"tcp:127.0.0.1:{echo_port}"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = tempfile.NamedTemporaryFile(prefix="bridge-micro-", suffix=".log", delete=False)
    bridge = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_port(port)
        modes = a.modes.split(",")
        clients = (("direct", lambda: Direct(echo_port)), ("bridge", lambda: Ws(port)))
        if "bulk" in modes:
            out = {}
            for name, make in clients:
                cpu0, t0 = cpu_seconds(bridge.pid), time.perf_counter()
                out[name] = (bulk(make(), a.seconds), (cpu_seconds(bridge.pid) - cpu0) / (time.perf_counter() - t0))
            (d, _), (b, busy) = out["direct"], out["bridge"]
            print(f"bulk 1 MiB x {WINDOW} in flight: direct {d:8.1f} MB/s   bridge {b:8.1f} MB/s   ratio {b / d:.2f}"
                  f"   (bridge CPU busy {busy:.0%}: {busy / b * 1000:.2f} CPU-s per GB echoed)")
        if "rtt" in modes:
            out = {}
            for name, make in clients:
                cpu0, t0 = cpu_seconds(bridge.pid), time.perf_counter()
                out[name] = (rtt(make(), a.seconds), (cpu_seconds(bridge.pid) - cpu0) / (time.perf_counter() - t0))
            (d, _), (b, busy) = out["direct"], out["bridge"]
            print(f"64 B round trips:            direct {d:8.0f} /s     bridge {b:8.0f} /s     ratio {b / d:.2f}"
                  f"   (bridge CPU busy {busy:.0%}: {busy / b * 1e6:.0f} CPU-µs per round trip)")
    finally:
        os.killpg(bridge.pid, signal.SIGTERM)
        bridge.wait(20)
        os.killpg(echo.pid, signal.SIGTERM)
        echo.wait(10)
    if a.profile:
        pstats.Stats(a.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
