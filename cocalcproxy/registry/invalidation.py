"""Hearing that the database changed: LISTEN/NOTIFY on PostgreSQL, a polled log on SQLite.

Both call ``on_payload("table:key")`` for every change the schema's triggers
report (``hub_schema.py``), and ``on_hearing(listening)`` whenever that starts
or stops: ``True`` on the first connection, a reconnection or a replaced file
(changes may have been missed: the hub forgets everything it cached),
``False`` when the connection or file is lost (the hub then caches nothing for
longer than a second, since no change would reach it).

PostgreSQL: one dedicated autocommit connection runs ``LISTEN`` and is watched
by the reactor (its socket is a reader; no thread waits on it).  When it
breaks, it is reopened with a growing pause (connecting happens in a thread).
SQLite: a read-only connection in the reactor thread asks ``PRAGMA
data_version`` every ``interval``; only when another connection committed are
the new rows of ``cocalcproxy_invalidations`` read.
"""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import quote

from twisted.internet import threads
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from .hub_schema import CHANNEL

log = Logger()

RETRY_FIRST = 0.5
RETRY_MAX = 2.0  # while not listening, the hub caches for 1 s at most: come back soon
POLL_INTERVAL = 0.5


@implementer(IReadDescriptor)
class PostgresListener:
    def __init__(self, database, reactor, on_payload, on_hearing) -> None:
        self.database = database
        self.reactor = reactor
        self.on_payload = on_payload
        self.on_hearing = on_hearing
        self.conn = None
        self.fd = -1  # the LISTEN socket, kept: libpq may close it before we hear of it
        self.delay = RETRY_FIRST
        self.retry = None
        self.running = False
        self.connected = False  # tests and logs: LISTEN is active

    def start(self) -> None:
        self.running = True
        self._connect()

    def stop(self) -> None:
        self.running = False
        if self.retry is not None and self.retry.active():
            self.retry.cancel()
        self.retry = None
        self._drop()

    def _connect(self) -> None:
        self.retry = None
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._open)
        d.addCallbacks(self._opened, self._failed)

    def _open(self):
        conn = self.database.connect("cocalcproxy hub (listen)")
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _opened(self, conn) -> None:
        if not self.running:
            conn.close()
            return
        self.conn = conn
        # Watch a duplicate of libpq's socket: libpq may close its own when the
        # server goes away, and a closed number still registered with the
        # reactor would be given to the next accepted connection, which then
        # is never watched (a hung TLS handshake, seen when the server stopped).
        self.fd = os.dup(conn.pgconn.socket)
        self.connected = True
        self.delay = RETRY_FIRST
        self.reactor.addReader(self)
        log.info("listening for changes on {db}", db=str(self.database))
        self.on_hearing(True)  # and forget whatever was decided while we were not listening

    def _failed(self, failure) -> None:
        if not self.running:
            return
        log.warn("cannot listen for database changes ({error}); retrying in {delay:.1f} s",
                 error=failure.getErrorMessage().strip(), delay=self.delay)
        self._schedule()

    def _schedule(self) -> None:
        self.retry = self.reactor.callLater(self.delay, self._connect)
        self.delay = min(self.delay * 2, RETRY_MAX)

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.connected = False
            self.reactor.removeReader(self)
            os.close(self.fd)
            self.fd = -1
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass

    # ------------------------------------------------------ IReadDescriptor
    def fileno(self) -> int:
        return self.fd

    def doRead(self):
        pgconn = self.conn.pgconn
        try:
            pgconn.consume_input()
        except Exception as e:  # noqa: BLE001 - psycopg.OperationalError: the server went away
            log.warn("lost the database change listener: {error}", error=str(e).strip())
            self._lost()
            return None
        if not self.database.connection_ok(self.conn):
            log.warn("lost the database change listener: the server closed the connection")
            self._lost()
            return None
        while True:
            note = pgconn.notifies()
            if note is None:
                break
            self.on_payload(note.extra.decode("utf-8", "replace"))
        return None

    def _lost(self) -> None:
        self._drop()
        self.on_hearing(False)
        if self.running:
            self._schedule()

    def connectionLost(self, reason) -> None:
        self._lost()

    def logPrefix(self) -> str:
        return "PostgresListener"


class SqlitePoller:
    def __init__(self, path: str, clock, on_payload, on_hearing, interval: float = POLL_INTERVAL) -> None:
        self.path = path
        self.clock = clock
        self.on_payload = on_payload
        self.on_hearing = on_hearing
        self.interval = interval
        self.conn: sqlite3.Connection | None = None
        self.identity = None
        self.version = None
        self.last_id = 0
        self.loop: LoopingCall | None = None

    def start(self) -> None:
        self.poll()
        self.loop = LoopingCall(self.poll)
        self.loop.clock = self.clock
        self.loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None
        self._close()

    def poll(self) -> None:
        try:
            self._poll()
        except (OSError, sqlite3.Error) as e:
            if "locked" not in str(e) and "busy" not in str(e):
                log.warn("cannot read the change log in {path}: {error}", path=self.path, error=e)
            if self.conn is not None:
                self.on_hearing(False)
            self._close()

    def _poll(self) -> None:
        st = os.stat(self.path)
        identity = (st.st_dev, st.st_ino)
        if self.conn is None or identity != self.identity:
            self._open(identity)
            return
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self.version:
            return
        self.version = version
        rows = self.conn.execute("SELECT id, payload FROM cocalcproxy_invalidations WHERE id > ? ORDER BY id",
                                 (self.last_id,)).fetchall()
        for row_id, payload in rows:
            self.last_id = row_id
            self.on_payload(payload)

    def _open(self, identity) -> None:
        self._close()
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(self.path))}?mode=ro", uri=True, timeout=0,
                               check_same_thread=False)
        self.version = conn.execute("PRAGMA data_version").fetchone()[0]
        self.last_id = conn.execute("SELECT coalesce(max(id), 0) FROM cocalcproxy_invalidations").fetchone()[0]
        self.conn, self.identity = conn, identity
        self.on_hearing(True)

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


__all__ = ["PostgresListener", "SqlitePoller"]
