"""Run the real proxy as a child process (``twistd -n cocalcproxy …``) for integration tests.

Each ``ProxyProcess`` is started in its own process group and stopped by PID
(SIGTERM, then SIGKILL), so a test never leaves a process behind and never
touches processes it did not start.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
TWISTD = str(Path(sys.executable).with_name("twistd"))


_OTHER_LOOPBACK = {"127.0.0.1": (socket.AF_INET6, "::1"), "::1": (socket.AF_INET, "127.0.0.1")}


def _free_on(family: int, host: str, port: int) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, port))
    except OSError as e:
        return e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)  # no such loopback: nothing can hold it
    return True


def bind_loopback(host: str, family: int, attempts: int = 50) -> socket.socket:
    """A listening socket on ``host`` at a port the *other* loopback leaves free too.

    The proxy reaches ``localhost`` at 127.0.0.1 and then ::1: a backend whose port
    some other program holds on the other loopback would make a test talk to a
    stranger (seen in CI: a ::1-only backend whose port was taken on 127.0.0.1).
    """
    for _ in range(attempts):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        other = _OTHER_LOOPBACK.get(host)
        if other is None or _free_on(other[0], other[1], sock.getsockname()[1]):
            sock.listen(128)
            return sock
        sock.close()
    raise OSError(f"no port on {host} that the other loopback leaves free")


def free_port() -> int:
    """A port free on 127.0.0.1 and on ::1 (see ``bind_loopback``)."""
    with bind_loopback("127.0.0.1", socket.AF_INET) as s:
        return s.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Until something accepts on ``host:port``; RuntimeError at once if ``proc`` exits first."""

    def listening() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
        except OSError:
            return False
        return True

    if not wait_until(listening, timeout):
        raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("COCALC_PROJECT_ID", None)
    if extra:
        env.update(extra)
    return env


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (``VmRSS``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count(pid: int) -> int:
    """Open descriptors of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ProxyProcess:
    """``twistd -n cocalcproxy <role> --listen tcp:PORT:interface=127.0.0.1 …`` as a child."""

    def __init__(self, role: str = "project", args: list[str] | tuple = (), port: int | None = None,
                 env: dict | None = None, listen: bool = True, wait: bool = True) -> None:
        self.port = port or free_port()
        self.logfile = tempfile.NamedTemporaryFile(prefix="cocalcproxy-", suffix=".log", delete=False)
        cmd = [TWISTD, "-n", "--pidfile=", "cocalcproxy", role]
        if listen:
            cmd += ["--listen", f"tcp:{self.port}:interface=127.0.0.1"]
        cmd += list(args)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=self.logfile, stderr=subprocess.STDOUT, env=child_env(env),
                                     cwd=tempfile.gettempdir(), start_new_session=True)
        if wait:
            try:
                wait_for_port(self.port, proc=self.proc)
            except Exception:
                self.stop()
                raise RuntimeError(f"proxy did not start: {self.cmd}\n{self.log_text()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_text(self) -> str:
        return Path(self.logfile.name).read_text(errors="replace")

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def fd_count(self) -> int:
        return fd_count(self.pid)

    def tcp_connections(self) -> int:
        """Established TCP sockets the proxy holds (from /proc/<pid>/fd + /proc/net/tcp*)."""
        inodes = set()
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    next(f)
                    for line in f:
                        fields = line.split()
                        if fields[9] in inodes and fields[3] != "0A":  # 0A = LISTEN
                            count += 1
            except OSError:
                pass
        return count

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.logfile.close()
        return self.proc.returncode

    def __enter__(self) -> "ProxyProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_twistd(args: list[str], timeout: float = 20.0, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``twistd -n cocalcproxy ARGS`` to completion (for --help and startup errors)."""
    return subprocess.run([TWISTD, "-n", "--pidfile=", "cocalcproxy", *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(env), cwd=tempfile.gettempdir())
