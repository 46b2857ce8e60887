"""Every role as a live process, each in front of a backend that counts what reaches it.

``LiveRoles(tmp)`` starts:

- ``project`` (no project id): ``/server/<backend>/…`` reaches the backend;
- ``host``: its registry places project ``PROJECT`` on the backend's port
  (the backend stands in for the container proxy); requests need the hub secret;
- ``hub`` with TLS on SQLite, in front of that host: ``/<PROJECT>/…`` with the
  session cookie reaches the backend, the path unchanged;
- ``bridge`` with ``--target`` a TCP sink that counts connections.

``send(role, raw)`` writes raw bytes to a role (over TLS for the hub, with its
certificate verified) and reads what comes back until the role closes or the
timeout passes.  ``role.good(path)`` is a well-formed request that role answers
with 200, ``role.wrap(raw_head_lines)`` adds what a role needs (the hub's
cookie, the host's secret) to a hand-made request.
"""

from __future__ import annotations

import socket
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cocalcproxy.admin import Admin
from cocalcproxy.registry.database import Database
from cocalcproxy.registry.hub_schema import create_schema

from .certs import TestPKI
from .chain import Quiet, host_registry
from .procs import ProxyProcess
from .raw_backends import RawRecordingBackend
from .sinks import StreamTarget

PROJECT = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SECRET = "live-roles-secret"
HEADER_TIMEOUT = 2.0  # seconds: slow-head tests need not wait the default 30


@dataclass
class Role:
    name: str
    proxy: ProxyProcess
    prefix: str  # the path before what the backend sees (or the whole path for host/hub)
    extra: list[bytes] = field(default_factory=list)  # header lines this role's requests need
    tls: ssl.SSLContext | None = None
    forwards: bool = True  # a well-formed request reaches an HTTP backend

    @property
    def port(self) -> int:
        return self.proxy.port

    def path(self, rest: str = "x") -> str:
        return self.prefix + rest

    def wrap(self, request_line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
        """A request with the headers this role needs added after Host."""
        lines = [request_line, b"Host: live.test", *self.extra, *headers]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def good(self, rest: str = "ok", close: bool = True) -> bytes:
        conn = (b"Connection: close",) if close else ()
        return self.wrap(b"GET %s HTTP/1.1" % self.path(rest).encode(), *conn)

    def connect(self, timeout: float = 10.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname="localhost")
        return sock


def send(role: Role, raw: bytes, timeout: float = 5.0, shut: bool = False) -> tuple[bytes, bool]:
    """Send ``raw``; read until the role closes (``True``) or ``timeout`` passes (``False``)."""
    sock = role.connect(timeout)
    data = b""
    closed = False
    try:
        sock.sendall(raw)
        if shut and role.tls is None:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(timeout)
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, socket.timeout):
                break
            except (ConnectionResetError, ssl.SSLError, OSError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    finally:
        sock.close()
    return data, closed


def status_of(data: bytes) -> int | None:
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])


class LiveRoles:
    def __init__(self, tmp: Path) -> None:
        tmp = Path(tmp)
        self.tmp = tmp
        self.procs: list[ProxyProcess] = []
        self.backend = RawRecordingBackend()
        self.sink = StreamTarget("read")
        self.pki = TestPKI(tmp / "pki")
        tls = self.pki.server()
        (tmp / "secret").write_text(SECRET + "\n")
        host_registry(tmp / "registry.sqlite3", [(PROJECT, "running", self.backend.port)])
        db = Database.parse(f"sqlite:///{tmp / 'hub.sqlite3'}")
        create_schema(db)
        admin = Admin(db, Quiet())
        owner = admin.add_account(str(uuid.uuid4()), False)
        self.session = admin.new_secret("remember_me", owner, 1)
        admin.add_project(PROJECT, owner)
        project = self._start("project", ["--no-entry-points"])
        host = self._start("host", ["--registry", str(tmp / "registry.sqlite3"), "--hub-secret-file",
                                    str(tmp / "secret")])
        admin.add_host("h1", f"http://127.0.0.1:{host.port}")
        admin.place(PROJECT, "h1")
        hub = self._start("hub", ["--database", db.url, "--hub-secret-file", str(tmp / "secret"),
                                  "--https-key", tls.key, "--https-cert", tls.cert])
        bridge = self._start("bridge", ["--target", self.sink.address])
        self.roles = {
            "project": Role("project", project, f"/server/{self.backend.port}/"),
            "host": Role("host", host, f"/{PROJECT}/", [b"X-CoCalc-Hub-Secret: " + SECRET.encode()]),
            "hub": Role("hub", hub, f"/{PROJECT}/", [b"Cookie: remember_me=" + self.session.encode()],
                        ssl.create_default_context(cafile=self.pki.ca)),
            "bridge": Role("bridge", bridge, "/", forwards=False),
        }

    def _start(self, role: str, args: list[str]) -> ProxyProcess:
        p = ProxyProcess(role, ["--header-timeout", str(HEADER_TIMEOUT), *args])
        self.procs.append(p)
        return p

    def __getitem__(self, name: str) -> Role:
        return self.roles[name]

    def reached(self) -> int:
        """Requests the backend has received so far (and bridge target connections)."""
        return len(self.backend.exchanges) + len(self.sink.received)

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.backend.close()
        self.sink.close()


ROLE_NAMES = ("project", "host", "hub", "bridge")
