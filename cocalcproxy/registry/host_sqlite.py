"""The project-host registry (SPEC §5): an SQLite file someone else writes, held
here as an in-memory snapshot so that no request waits for the database.

The file is opened read-only.  Every ``interval`` seconds (0.5 s: changes are
seen within a second) a timer asks SQLite whether another connection has
committed since (``PRAGMA data_version``) and whether the path now names a
different file (the manager may replace it: same path, new inode); only then
is the ``projects`` table read again and the snapshot swapped.  A file that is
missing, locked or broken for a while keeps the last good snapshot (logged
once per problem, and once when it is readable again).

    CREATE TABLE projects (project_id TEXT PRIMARY KEY, state TEXT, http_port INTEGER)
"""

from __future__ import annotations

import os
import sqlite3
from types import MappingProxyType
from urllib.parse import quote

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..routing.host import Placement

log = Logger()

POLL_INTERVAL = 0.5
_QUERY = "SELECT project_id, state, http_port FROM projects"


class RegistryError(Exception):
    """The registry cannot be read; the message names the file."""


def read_snapshot(conn: sqlite3.Connection) -> MappingProxyType:
    """``{project_id: Placement}`` from the ``projects`` table (ids lower-cased)."""
    rows = conn.execute(_QUERY).fetchall()
    table = {}
    for project_id, state, port in rows:
        if not isinstance(project_id, str):
            continue
        if not isinstance(port, int) or not 0 < port < 65536:
            port = None
        table[project_id.strip().lower()] = Placement(str(state or ""), port)
    return MappingProxyType(table)


class HostRegistry:
    """The snapshot in force (``snapshot``) and the timer that refreshes it."""

    def __init__(self, path: str, clock, interval: float = POLL_INTERVAL) -> None:
        self.path = path
        self.clock = clock
        self.interval = interval
        self.conn: sqlite3.Connection | None = None
        self.identity = None  # (st_dev, st_ino) of the file the connection has open
        self.version = None
        self.problem: str | None = None
        self.loop: LoopingCall | None = None
        self.snapshot = MappingProxyType({})
        self.loads = 0  # how many times the table was read (tests, metrics)
        self.refresh(strict=True)

    # -------------------------------------------------------------- timer
    def start(self) -> None:
        if self.loop is None:
            self.loop = LoopingCall(self.refresh)
            self.loop.clock = self.clock
            self.loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None
        self._close()

    # ------------------------------------------------------------ reading
    def refresh(self, strict: bool = False) -> None:
        """Read the table again if the file changed; keep the snapshot on errors
        (``strict``: raise ``RegistryError`` instead, at startup)."""
        try:
            changed = self._changed()
            if changed:
                self.snapshot = read_snapshot(self.conn)
                self.loads += 1
        except (OSError, sqlite3.Error) as e:
            self._close()
            message = f"--registry {self.path}: {getattr(e, 'strerror', None) or e}"
            if strict:
                raise RegistryError(message) from None
            if _busy(e):
                return  # a writer holds the lock right now: try again at the next tick
            if message != self.problem:
                log.warn("{message}; keeping the last {n} project(s)", message=message, n=len(self.snapshot))
                self.problem = message
            return
        if self.problem is not None:
            log.info("--registry {path}: readable again ({n} project(s))", path=self.path, n=len(self.snapshot))
            self.problem = None

    def _changed(self) -> bool:
        st = os.stat(self.path)
        identity = (st.st_dev, st.st_ino)
        if self.conn is None or identity != self.identity:
            self._open(identity)
            return True
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.version = version
            return True
        return False

    def _open(self, identity) -> None:
        self._close()
        # timeout=0: never wait for a writer's lock in the reactor thread
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(self.path))}?mode=ro", uri=True, timeout=0,
                               check_same_thread=False)
        try:
            self.version = conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            conn.close()
            raise
        self.conn = conn
        self.identity = identity

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        self.identity = None
        if conn is not None:
            conn.close()


def _busy(error: Exception) -> bool:
    text = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


__all__ = ["HostRegistry", "POLL_INTERVAL", "RegistryError", "read_snapshot"]
