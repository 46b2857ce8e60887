"""The host's registry file replaced under it (``os.replace`` with a new file, as a
manager writing atomically does) and briefly unreadable (renamed away, then
back; replaced by garbage or an empty file, then by a good one).

While a client hammers the host without pause: every answer is a 200 from
the backend the registry names — no 404, 503 or 502 blip — the last good
snapshot keeps serving while the file is missing or broken, and a new file
takes over within a second.  Backends ``A`` and ``B`` answer their own name,
so every answer says which snapshot routed it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.faults.helpers import unexpected_tracebacks
from tests.support.backends import RecordingBackend, simple_response
from tests.support.chain import PROJECT, host_registry
from tests.support.procs import ProxyProcess
from tests.support.wire import get

TAKE_OVER = 1.0  # seconds: "sees changes within 1 s" (SPEC §5)
HOLD = 1.6  # seconds a broken state lasts: more than three polls (0.5 s)


class Hammer(threading.Thread):
    """GETs through the host back to back; keeps (time, status, body) of each."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answers: list[tuple[float, int | None, bytes]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                a = get(self.port, f"/{PROJECT}/who")
                self.answers.append((time.monotonic(), a.status, a.body))
            except Exception as e:  # noqa: BLE001 - a failure is an answer too
                self.answers.append((time.monotonic(), None, repr(e).encode()))

    def bodies(self, since: float, until: float = float("inf")) -> list[bytes]:
        return [b for t, _, b in list(self.answers) if since <= t <= until]

    def first(self, body: bytes, since: float) -> float | None:
        for t, status, b in list(self.answers):
            if t >= since and status == 200 and b == body:
                return t - since
        return None


def wait_first(hammer: Hammer, body: bytes, since: float, timeout: float) -> float | None:
    deadline = max(since, time.monotonic()) + timeout + 0.5
    while time.monotonic() < deadline:
        took = hammer.first(body, since)
        if took is not None:
            return took
        time.sleep(0.01)
    return hammer.first(body, since)


@pytest.fixture
def world(tmp_path: Path):
    a = RecordingBackend(lambda req: simple_response(200, b"A"))
    b = RecordingBackend(lambda req: simple_response(200, b"B"))
    registry = tmp_path / "registry.sqlite3"
    host_registry(registry, [(PROJECT, "running", a.port)])
    host = ProxyProcess("host", ["--registry", str(registry)])
    hammer = Hammer(host.port)
    hammer.start()
    try:
        yield tmp_path, registry, a, b, host, hammer
    finally:
        hammer.stop.set()
        hammer.join(10)
        host.stop()
        a.close()
        b.close()


def replace_with(tmp: Path, registry: Path, rows) -> float:
    new = tmp / f"new-{time.monotonic_ns()}.sqlite3"
    host_registry(new, rows)
    os.replace(new, registry)
    return time.monotonic()


def test_replaced_and_briefly_unreadable_registry(world):
    tmp, registry, a, b, host, hammer = world
    assert wait_first(hammer, b"A", time.monotonic() - 5, 5) is not None, "no answer from A at the start"

    # 1. replaced by a new file: B takes over within a second
    at = replace_with(tmp, registry, [(PROJECT, "running", b.port)])
    took = wait_first(hammer, b"B", at, TAKE_OVER)
    assert took is not None and took <= TAKE_OVER, f"the replaced registry was not followed within 1 s ({took})"

    # 2. renamed away: the last snapshot (B) keeps serving; the file, changed meanwhile, comes back
    away = tmp / "registry.away"
    os.rename(registry, away)
    gone = time.monotonic()
    host_registry(away, [(PROJECT, "running", a.port)])  # the manager rewrites it while it is away
    time.sleep(HOLD)
    assert set(hammer.bodies(gone + 0.5)) == {b"B"}, "the last snapshot did not keep serving while the file was missing"
    os.rename(away, registry)
    back = time.monotonic()
    took = wait_first(hammer, b"A", back, TAKE_OVER)
    assert took is not None and took <= TAKE_OVER, f"the registry that came back was not followed within 1 s ({took})"

    # 3. replaced by garbage, then by an empty file: A keeps serving; then a good file (B) takes over
    for broken in (b"this is not an sqlite database\n" * 100, b""):
        junk = tmp / f"junk-{len(broken)}"
        junk.write_bytes(broken)
        os.replace(junk, registry)
        since = time.monotonic()
        time.sleep(HOLD)
        assert set(hammer.bodies(since + 0.5)) == {b"A"}, f"a broken registry file ({len(broken)} bytes) was not ignored"
    at = replace_with(tmp, registry, [(PROJECT, "running", b.port)])
    took = wait_first(hammer, b"B", at, TAKE_OVER)
    assert took is not None and took <= TAKE_OVER, f"the good file after a broken one was not followed within 1 s ({took})"
    time.sleep(0.3)

    hammer.stop.set()
    hammer.join(10)
    bad = [(t, s, body[:100]) for t, s, body in hammer.answers if s != 200 or body not in (b"A", b"B")]
    assert not bad, f"{len(bad)} of {len(hammer.answers)} answers were not a backend's 200: {bad[:5]}"
    assert len(hammer.answers) > 100
    log = host.log_text()
    assert "keeping the last 1 project(s)" in log and "readable again" in log, log[-3000:]
    assert not unexpected_tracebacks(log), unexpected_tracebacks(log)[:3]
    assert host.proc.poll() is None
