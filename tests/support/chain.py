"""The whole three-hop chain as real processes: hub (TLS) → host → project → backend.

``Chain`` starts a ``project`` role for one project, a ``host`` role whose
SQLite registry places that project on the project's port, and a ``hub`` role
on SQLite or a given PostgreSQL URL, with TLS from a test CA and a hub secret
between hub and host.  The hub database is filled with the operator tool's
own code (``cocalcproxy.admin.Admin``): a host, an owner with a session, the
project placed.  ``https(…)`` makes requests the way a browser does,
verifying the hub's certificate.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cocalcproxy.admin import Admin
from cocalcproxy.registry.database import Database
from cocalcproxy.registry.hub_schema import create_schema

from .certs import TestPKI
from .procs import ProxyProcess, free_port

PROJECT = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


class Quiet:
    """An ``out`` for ``Admin`` that keeps what it printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None

    def json(self):
        return json.loads(self.body)


def host_registry(path: Path, rows) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS projects (project_id TEXT PRIMARY KEY, state TEXT, http_port INTEGER)")
    conn.execute("DELETE FROM projects")
    conn.executemany("INSERT INTO projects VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()


@dataclass
class Chain:
    tmp: Path
    database_url: str | None = None  # None: SQLite in tmp
    base_url: str = "/"
    project_args: tuple = ()
    hub_args: tuple = ()
    procs: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tmp = Path(self.tmp)
        self.pki = TestPKI(self.tmp / "pki")
        self.tls = self.pki.server()
        self.secret_file = self.tmp / "hub-secret"
        self.secret_file.write_text("chain-secret-" + uuid.uuid4().hex + "\n")
        self.database_url = self.database_url or f"sqlite:///{self.tmp / 'hub.sqlite3'}"
        self.db = Database.parse(self.database_url)
        create_schema(self.db)
        self.out = Quiet()
        self.admin = Admin(self.db, self.out)
        self.project = self.start_project(PROJECT)
        self.registry = self.tmp / "registry.sqlite3"
        host_registry(self.registry, [(PROJECT, "running", self.project.port)])
        self.host = self.start_host(self.registry)
        self.admin.add_host("h1", f"http://127.0.0.1:{self.host.port}")
        self.owner = self.admin.add_account(str(uuid.uuid4()), False)
        self.admin.add_project(PROJECT, self.owner)
        self.admin.place(PROJECT, "h1")
        self.session = self.admin.new_secret("remember_me", self.owner, 1)
        self.hub = self.start_hub()

    # -------------------------------------------------------------- roles
    def _start(self, role: str, args: list[str]) -> ProxyProcess:
        p = ProxyProcess(role, ["--base-url", self.base_url, *args])
        self.procs.append(p)
        return p

    def start_project(self, project_id: str) -> ProxyProcess:
        return self._start("project", ["--project-id", project_id, "--no-entry-points", *self.project_args])

    def start_host(self, registry: Path) -> ProxyProcess:
        return self._start("host", ["--registry", str(registry), "--hub-secret-file", str(self.secret_file)])

    def start_hub(self, *extra: str) -> ProxyProcess:
        return self._start("hub", ["--database", self.database_url, "--hub-secret-file", str(self.secret_file),
                                   "--https-key", self.tls.key, "--https-cert", self.tls.cert,
                                   *self.hub_args, *extra])

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    # ------------------------------------------------------------ clients
    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.pki.ca)

    def path(self, rest: str, project: str = PROJECT) -> str:
        return f"{self.base_url}{project}/{rest}"

    def https(self, method: str, path: str, headers: dict | None = None, body=None, hub: ProxyProcess | None = None,
              cookie: str | None = None, timeout: float = 30.0) -> Response:
        hub = hub or self.hub
        conn = http.client.HTTPSConnection("localhost", hub.port, context=self.context(), timeout=timeout)
        hdrs = dict(headers or {})
        if cookie is not None:
            hdrs["Cookie"] = cookie
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def cookie(self, secret: str | None = None, name: str = "remember_me") -> str:
        from cocalcproxy.auth.credentials import CookieNames

        names = CookieNames.for_base(self.base_url, name)
        return f"{names.session.decode()}={secret or self.session}"

    def backend_url_path(self, port: int, rest: str = "") -> str:
        """The hub path that reaches ``127.0.0.1:port`` in the project (``server/``: prefix stripped)."""
        return self.path(f"server/{port}/{rest}")


def free() -> int:
    return free_port()
