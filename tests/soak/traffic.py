"""The soak's clients: workers that make a random mix of every kind of traffic
through the hub, and a revoker that takes access away and gives it back.

Every answer is checked — its status, and for a 200 the exact body (SHA-256
of what was read against what the app sent or received) — and counted in a
``Tally``: ``ok`` per kind, and every failure (an unexpected status, a wrong
byte, an exception, a timeout) with what happened.  Nothing here retries: a
request that needs a second try is a failure.

Kinds (one *operation* each):

- ``keepalive``: one TLS connection, 3–20 GETs and HEADs of 0–64 KiB on it; the
  socket must stay the same (keep-alive through the hub);
- ``upload``: 1–2 PUTs of 1–8 MiB on one connection, Content-Length or
  chunked, streamed from the pattern; the app answers length and SHA-256;
- ``download``: 1–8 MiB, Content-Length or chunked, hashed while read;
- ``websocket``: a session with the WebSocket echo, 1–20 text or binary
  messages of 1 B – 1 MiB, each echo compared;
- ``bridge``: a WebSocket through the chain to the ``bridge`` role and its TCP
  echo (subprotocol ``binary`` or none), the echoed stream compared;
- ``miss``: a request the hub must refuse — no cookie, an unknown session, an
  account that is no member, a viewer, a banned owner, an API key for another
  project (401/403), a refused upload, refused WebSocket upgrades — and a
  keep-alive connection that alternates good and bad credentials (each
  request is judged on its own).  Miss paths carry ``/miss/``: the app and the
  echo count any that reach them as leaks.

The revoker cycles through five ways of taking access away (remove the
collaborator, make them a viewer, ban them, revoke the session, revoke the API
key): it makes sure access works (so the hub caches "allowed" for 60 s), makes
the change with the operator tool, and then expects the refusal within
``REVOKE_WITHIN`` and on *every* request after it — fresh connections, a
keep-alive connection opened before, a WebSocket upgrade — then gives access
back and expects 200 the same way.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import secrets
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field

from tests.support.chain import PROJECT, Chain

from .backends import stream, stream_sha256
from .ws import Client, Refused

MiB = 1 << 20
TIMEOUT = 30.0  # every socket operation: a hang is a failure, never a stuck test
REVOKE_WITHIN = 1.0  # seconds from the operator tool's commit to the refusal (PostgreSQL NOTIFY)
HOLD = 1.0  # seconds every request must keep getting the new answer after it first appears

WEIGHTS = {"keepalive": 30, "upload": 6, "download": 8, "websocket": 12, "bridge": 10, "miss": 16}


class Failure(Exception):
    """A checked answer that was not what it must be."""


@dataclass
class Tally:
    """Counts of checked operations and of failures, shared by all threads."""

    ok: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    extra: Counter = field(default_factory=Counter)  # requests, messages, bytes
    details: list = field(default_factory=list)
    latencies: dict = field(default_factory=dict)  # revocation mode → [seconds to take effect]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.extra[name] += n

    def success(self, kind: str) -> None:
        with self.lock:
            self.ok[kind] += 1

    def failure(self, kind: str, what: str) -> None:
        with self.lock:
            self.failed[kind] += 1
            if len(self.details) < 50:
                self.details.append(f"{time.strftime('%H:%M:%S')} {kind}: {what}")

    def latency(self, mode: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(mode, []).append(seconds)

    def run(self, kind: str, op, *args) -> None:
        try:
            op(*args)
        except Exception as e:  # noqa: BLE001 - every exception is a counted, reported failure
            self.failure(kind, f"{type(e).__name__}: {e} [{where(e)}]"[:600])
        else:
            self.success(kind)


def where(e: BaseException) -> str:
    """Where in the soak's own code ``e`` came from (function:line, innermost last)."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/tests/soak/" in f.filename]
    return " < ".join(f"{f.name}:{f.lineno}" for f in reversed(frames[-3:]))


def _text(rng: random.Random, n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 äöü€"
    return "".join(rng.choice(alphabet) for _ in range(min(n, 256))) * max(1, n // 256)


def _size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.randint(1, 4096)
    if r < 0.95:
        return rng.randint(4097, 256 * 1024)
    return rng.randint(256 * 1024, MiB)


class World:
    """What every client needs: the chain, the targets' ports, the credentials."""

    def __init__(self, chain: Chain, app_port: int, ws_port: int, bridge_port: int) -> None:
        self.chain = chain
        self.context = chain.context()
        self.app_port = app_port
        self.ws_port = ws_port
        self.bridge_port = bridge_port
        self.cookie = chain.cookie()
        admin = chain.admin
        # a second steady user: revocations of others must never touch them
        self.collaborator = admin.add_account(str(uuid.uuid4()), False)
        admin.set_member(PROJECT, self.collaborator, "collaborator")
        self.cookie2 = chain.cookie(admin.new_secret("remember_me", self.collaborator, 1))
        # the refused ones
        stranger = admin.add_account(str(uuid.uuid4()), False)
        self.stranger = chain.cookie(admin.new_secret("remember_me", stranger, 1))
        viewer = admin.add_account(str(uuid.uuid4()), False)
        admin.set_member(PROJECT, viewer, "viewer")
        self.viewer = chain.cookie(admin.new_secret("remember_me", viewer, 1))
        banned = admin.add_account(str(uuid.uuid4()), False)
        admin.set_member(PROJECT, banned, "owner")
        admin.set_banned(banned, True)
        self.banned = chain.cookie(admin.new_secret("remember_me", banned, 1))
        self.foreign_key = admin.new_secret("api_keys", chain.owner, None, str(uuid.uuid4()))

    # ------------------------------------------------------------ addresses
    def app(self, rest: str) -> str:
        return self.chain.path(f"server/{self.app_port}/{rest}")

    def https(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("localhost", self.chain.hub.port, context=self.context, timeout=TIMEOUT)

    def ws(self, port: int, rest: str, headers: dict, subprotocols: list[str] | None = None) -> Client:
        """A WebSocket through the hub to ``server/<port>/<rest>`` (``Refused`` if not upgraded)."""
        return Client.connect(self.chain.hub.port, self.chain.path(f"server/{port}/{rest}"), headers, self.context,
                              TIMEOUT, subprotocols)


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)


def check_get(world: World, conn: http.client.HTTPConnection, rng: random.Random, headers: dict,
              tally: Tally, method: str = "GET") -> None:
    n = rng.choice([0, 1, rng.randint(2, 4096), rng.randint(4097, 65536)])
    seed = rng.getrandbits(31)
    conn.request(method, world.app(f"get?n={n}&seed={seed}"), headers=headers)
    r = conn.getresponse()
    body = r.read()
    tally.count("http requests")
    expect(r.status == 200, f"{method} n={n}: status {r.status} {body[:200]!r}")
    tally.count(f"app {method.lower()}")
    expect(r.getheader("Content-Length") == str(n), f"{method} n={n}: Content-Length {r.getheader('Content-Length')}")
    if method == "HEAD":
        expect(body == b"", f"HEAD n={n}: a body of {len(body)} bytes")
    else:
        expect(hashlib.sha256(body).hexdigest() == stream_sha256(n, seed), f"GET n={n} seed={seed}: body differs")
        tally.count("bytes down", n)


# ------------------------------------------------------------------ kinds


def keepalive(world: World, rng: random.Random, tally: Tally) -> None:
    conn = world.https()
    headers = {"Cookie": rng.choice([world.cookie, world.cookie2])}
    try:
        sock = None
        for i in range(rng.randint(3, 20)):
            check_get(world, conn, rng, headers, tally, "HEAD" if rng.random() < 0.1 else "GET")
            expect(conn.sock is not None, f"request {i + 1}: the hub closed a keep-alive connection")
            expect(sock is None or conn.sock is sock, f"request {i + 1}: the keep-alive connection was not reused")
            sock = conn.sock
    finally:
        conn.close()


def upload(world: World, rng: random.Random, tally: Tally) -> None:
    conn = world.https()
    try:
        for _ in range(rng.randint(1, 2)):
            n = rng.randint(MiB, 8 * MiB)
            seed = rng.getrandbits(31)
            chunked = rng.random() < 0.5
            conn.putrequest("PUT", world.app("up"))
            conn.putheader("Cookie", world.cookie)
            conn.putheader("Content-Type", "application/octet-stream")
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            else:
                conn.putheader("Content-Length", str(n))
            conn.endheaders()
            digest = hashlib.sha256()
            for piece in stream(n, seed):
                digest.update(piece)
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
            r = conn.getresponse()
            body = r.read()
            tally.count("http requests")
            expect(r.status == 200, f"upload {n} chunked={chunked}: status {r.status} {body[:200]!r}")
            tally.count("app upload")
            doc = json.loads(body)
            expect(doc == {"length": n, "sha256": digest.hexdigest()},
                   f"upload {n} chunked={chunked}: the app got {doc['length']} bytes, sha256 {doc['sha256'][:12]}…")
            tally.count("bytes up", n)
    finally:
        conn.close()


def download(world: World, rng: random.Random, tally: Tally) -> None:
    n = rng.randint(MiB, 8 * MiB)
    seed = rng.getrandbits(31)
    chunked = rng.random() < 0.5
    conn = world.https()
    try:
        conn.request("GET", world.app(f"dl?n={n}&seed={seed}&chunked={int(chunked)}"), headers={"Cookie": world.cookie})
        r = conn.getresponse()
        tally.count("http requests")
        if r.status != 200:
            raise Failure(f"download {n}: status {r.status} {r.read()[:200]!r}")
        tally.count("app download")
        digest = hashlib.sha256()
        got = 0
        while True:
            piece = r.read(256 * 1024)
            if not piece:
                break
            digest.update(piece)
            got += len(piece)
        expect(got == n, f"download {n} chunked={chunked}: {got} bytes arrived")
        expect(digest.hexdigest() == stream_sha256(n, seed), f"download {n} chunked={chunked}: body differs")
        tally.count("bytes down", n)
    finally:
        conn.close()


def websocket(world: World, rng: random.Random, tally: Tally) -> None:
    with world.ws(world.ws_port, "ws", {"Cookie": world.cookie}) as ws:
        tally.count("echo sessions")
        for _ in range(rng.randint(1, 20)):
            size = _size(rng)
            msg = _text(rng, size) if rng.random() < 0.3 else rng.randbytes(size)
            ws.send(msg)
            back = ws.recv()
            tally.count("websocket messages")
            expect(back == msg, f"echo of a {type(msg).__name__} message of {len(msg)}: {len(back)} came back, differs")


def bridge(world: World, rng: random.Random, tally: Tally) -> None:
    offer = rng.random() < 0.5
    with world.ws(world.bridge_port, "tcp", {"Cookie": world.cookie}, ["binary"] if offer else None) as ws:
        tally.count("bridge sessions")
        expect(ws.subprotocol == ("binary" if offer else None), f"subprotocol {ws.subprotocol!r}")
        for _ in range(rng.randint(1, 20)):
            data = rng.randbytes(_size(rng))
            ws.send(data)
            got = bytearray()
            while len(got) < len(data):  # the target's reads cut the messages: a byte stream
                m = ws.recv()
                expect(isinstance(m, bytes), "target data must come as binary messages")
                got += m
            tally.count("bridge messages")
            expect(bytes(got) == data, f"bridged echo of {len(data)} bytes: {len(got)} came back, differs")


MISSES = {
    "no cookie": ({}, 401),
    "unknown session": (None, 401),  # filled per call: a random secret
    "not a member": ("stranger", 403),
    "viewer": ("viewer", 403),
    "banned owner": ("banned", 403),
    "key for another project": ("foreign", 403),
}


def miss_headers(world: World, name: str) -> tuple[dict, int]:
    spec, status = MISSES[name]
    if name == "no cookie":
        return {}, status
    if name == "unknown session":
        return {"Cookie": world.chain.cookie(secrets.token_urlsafe(32))}, status
    if name == "key for another project":
        return {"Authorization": f"Bearer {world.foreign_key}"}, status
    return {"Cookie": getattr(world, spec)}, status


def miss(world: World, rng: random.Random, tally: Tally) -> None:
    r = rng.random()
    name = rng.choice(list(MISSES))
    headers, status = miss_headers(world, name)
    headers["Accept"] = rng.choice(["application/json", "text/html,*/*;q=0.8"])
    if r < 0.55:  # a plain GET
        conn = world.https()
        try:
            conn.request("GET", world.app("miss/get?n=10&seed=1"), headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            tally.count("http requests")
            expect(resp.status == status, f"{name}: status {resp.status}, want {status}")
            expect(b"an auth miss reached the app" not in body, f"{name}: the app answered")
        finally:
            conn.close()
    elif r < 0.7:  # an upload the hub refuses at once: it must read and drop the body, then answer
        conn = world.https()
        try:
            conn.request("PUT", world.app("miss/up"), body=rng.randbytes(256 * 1024), headers=headers)
            resp = conn.getresponse()
            resp.read()
            tally.count("http requests")
            expect(resp.status == status, f"upload, {name}: status {resp.status}, want {status}")
        finally:
            conn.close()
    elif r < 0.85:  # a WebSocket upgrade, to the echo and to the bridge
        port = rng.choice([world.ws_port, world.bridge_port])
        try:
            with world.ws(port, "miss/ws", headers):
                raise Failure(f"WebSocket upgrade, {name}: it was accepted")
        except Refused as e:
            expect(e.status == status, f"WebSocket upgrade, {name}: status {e.status}, want {status}")
        tally.count("http requests")
    else:  # one keep-alive connection, good and bad credentials in turn
        conn = world.https()
        try:
            for i in range(rng.randint(2, 6)):
                if i % 2 == 0:
                    check_get(world, conn, rng, {"Cookie": world.cookie}, tally)
                else:
                    name = rng.choice(list(MISSES))
                    headers, status = miss_headers(world, name)
                    conn.request("GET", world.app("miss/get?n=10&seed=1"), headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    tally.count("http requests")
                    expect(resp.status == status, f"mixed keep-alive, {name}: status {resp.status}, want {status}")
        finally:
            conn.close()


KINDS = {"keepalive": keepalive, "upload": upload, "download": download, "websocket": websocket, "bridge": bridge,
         "miss": miss}


class Worker(threading.Thread):
    def __init__(self, world: World, tally: Tally, seed: int, until: float, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"soak-worker-{seed}")
        self.world = world
        self.tally = tally
        self.rng = random.Random(seed)
        self.until = until
        self.stop = stop

    def run(self) -> None:
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        while not self.stop.is_set() and time.monotonic() < self.until:
            kind = self.rng.choices(kinds, weights)[0]
            self.tally.run(kind, KINDS[kind], self.world, self.rng, self.tally)


# ------------------------------------------------------------------ revocations


class Revoker(threading.Thread):
    """Takes one account's access away and gives it back, over and over."""

    MODES = ("remove collaborator", "make viewer", "ban", "revoke session", "revoke api key")

    def __init__(self, world: World, tally: Tally, until: float, stop: threading.Event, pause: float = 1.0) -> None:
        super().__init__(daemon=True, name="soak-revoker")
        self.world = world
        self.tally = tally
        self.until = until
        self.stop = stop
        self.pause = pause
        admin = world.chain.admin
        self.account = admin.add_account(str(uuid.uuid4()), False)
        admin.set_member(PROJECT, self.account, "collaborator")
        self.secret = admin.new_secret("remember_me", self.account, 1)
        self.key = admin.new_secret("api_keys", self.account, None)
        self.kept: http.client.HTTPSConnection | None = None
        self.n = 0
        self.last = None

    def headers(self, mode: str) -> dict:
        if mode == "revoke api key":
            return {"Authorization": f"Bearer {self.key}"}
        return {"Cookie": self.world.chain.cookie(self.secret)}

    def status(self, headers: dict) -> int:
        """One GET, on the kept keep-alive connection or a fresh one in turn; a 200 must carry the app's body."""
        self.n += 1
        fresh = self.n % 2 == 0
        conn = self.world.https() if fresh else self.kept
        try:
            conn.request("GET", self.world.app("get?n=100&seed=7"), headers=headers)
            r = conn.getresponse()
            body = r.read()
        except Exception as e:
            raise Failure(f"GET on the {'fresh' if fresh else 'kept-alive'} connection (request {self.n}, "
                          f"last status {self.last}): {type(e).__name__}: {e}") from e
        finally:
            if fresh:
                conn.close()
        self.last = r.status
        self.tally.count("http requests")
        self.tally.count("revoker requests")
        if r.status == 200:
            self.tally.count("app get")
            expect(body == b"".join(stream(100, 7)), "a 200 without the app's body")
        return r.status

    def ws_status(self, headers: dict) -> int:
        try:
            with self.world.ws(self.world.ws_port, "ws", headers) as ws:
                self.tally.count("echo sessions")
                ws.send(b"still here?")
                expect(ws.recv() == b"still here?", "echo differs")
                return 101
        except Refused as e:
            return e.status
        finally:
            self.tally.count("http requests")

    def switch(self, mode: str, change, want: int, was: int, headers: dict) -> None:
        """Make ``change``; expect ``want`` within ``REVOKE_WITHIN``, then on every request for ``HOLD``."""
        change()
        t0 = time.monotonic()
        while True:
            s = self.status(headers)
            took = time.monotonic() - t0
            if s == want:
                break
            expect(s == was, f"{mode}: status {s} while switching from {was} to {want}")
            expect(took < REVOKE_WITHIN, f"{mode}: still {s} {took:.2f} s after the change (want {want})")
            time.sleep(0.02)
        self.tally.latency(mode if want != 200 else f"{mode}, undone", took)
        n = 0
        end = time.monotonic() + HOLD
        while time.monotonic() < end or n < 10:
            s = self.status(headers)
            n += 1
            expect(s == want, f"{mode}: status {s} after {want} had been seen (request {n} after it)")
        s = self.ws_status(headers)
        expect(s == (101 if want == 200 else want), f"{mode}: WebSocket upgrade got {s}, want {want}")

    def restore(self) -> None:
        """After a failed cycle: access back, fresh credentials, so one failure is not every later one."""
        admin = self.world.chain.admin
        admin.set_member(PROJECT, self.account, "collaborator")
        admin.set_banned(self.account, False)
        self.secret = admin.new_secret("remember_me", self.account, 1)
        self.key = admin.new_secret("api_keys", self.account, None)

    def cycle(self, mode: str) -> None:
        admin = self.world.chain.admin
        headers = self.headers(mode)
        self.kept = self.world.https()
        try:
            for _ in range(2):  # now the hub caches "allowed" (60 s) for these credentials
                expect(self.status(headers) == 200, f"{mode}: no access before the change")
            if mode == "remove collaborator":
                self.switch(mode, lambda: admin.set_member(PROJECT, self.account, None), 403, 200, headers)
                self.switch(mode, lambda: admin.set_member(PROJECT, self.account, "collaborator"), 200, 403, headers)
            elif mode == "make viewer":
                self.switch(mode, lambda: admin.set_member(PROJECT, self.account, "viewer"), 403, 200, headers)
                self.switch(mode, lambda: admin.set_member(PROJECT, self.account, "collaborator"), 200, 403, headers)
            elif mode == "ban":
                self.switch(mode, lambda: admin.set_banned(self.account, True), 403, 200, headers)
                self.switch(mode, lambda: admin.set_banned(self.account, False), 200, 403, headers)
            elif mode == "revoke session":
                self.switch(mode, lambda: admin.revoke("remember_me", self.secret, None, None), 401, 200, headers)
                self.secret = admin.new_secret("remember_me", self.account, 1)
                expect(self.status(self.headers(mode)) == 200, f"{mode}: the new session is refused")
            else:
                self.switch(mode, lambda: admin.revoke("api_keys", self.key, None, None), 401, 200, headers)
                self.key = admin.new_secret("api_keys", self.account, None)
                expect(self.status(self.headers(mode)) == 200, f"{mode}: the new key is refused")
        except BaseException:
            self.restore()
            raise
        finally:
            self.kept.close()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set() and time.monotonic() < self.until:
            mode = self.MODES[i % len(self.MODES)]
            i += 1
            self.tally.run("revocation", self.cycle, mode)
            self.stop.wait(self.pause)
