"""``--activity-file`` on a fake clock: touched at most once per interval,
recreated when deleted, and an unwritable path only logs.  Which routes count
as activity is checked end to end in ``tests/integration/test_servers.py``."""

from __future__ import annotations

import os
import shutil

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher

from cocalcproxy.roles.project.activity import ActivityFile

OLD = 1_000_000.0  # an mtime long past: any touch moves it


def make(tmp_path, interval: float = 1.0):
    clock = Clock()
    clock.advance(5000)  # a clock that does not start at 0, like the reactor's
    path = tmp_path / "activity"
    activity = ActivityFile(str(path), clock, interval)
    return clock, path, activity


def aged(path) -> None:
    os.utime(path, (OLD, OLD))


def touched(path) -> bool:
    return path.stat().st_mtime != OLD


def test_the_file_is_created_at_start(tmp_path):
    _, path, _ = make(tmp_path)
    assert path.exists() and path.read_bytes() == b""


def test_an_existing_file_is_left_as_it_is(tmp_path):
    path = tmp_path / "activity"
    path.write_bytes(b"keep me")
    aged(path)
    ActivityFile(str(path), Clock(), 1.0)
    assert path.read_bytes() == b"keep me" and not touched(path)  # starting is not activity


def test_the_first_touch_goes_through(tmp_path):
    _, path, activity = make(tmp_path)
    aged(path)
    activity.touch()
    assert touched(path)


def test_touched_at_most_once_per_interval(tmp_path):
    clock, path, activity = make(tmp_path, interval=1.0)
    activity.touch()
    aged(path)
    clock.advance(0.999)
    activity.touch()
    assert not touched(path)  # within the interval: no utime at all
    clock.advance(0.001)
    activity.touch()
    assert touched(path)  # a whole interval since the last touch
    aged(path)
    for _ in range(100):  # a busy WebSocket: many calls, one touch per interval
        clock.advance(0.05)
        activity()
    assert touched(path)
    aged(path)
    activity()
    assert not touched(path)  # the last touch was within this interval


def test_a_suppressed_call_does_not_extend_the_interval(tmp_path):
    """The interval runs from the last real touch, not from the last call."""
    clock, path, activity = make(tmp_path, interval=1.0)
    activity.touch()
    clock.advance(0.6)
    activity.touch()  # suppressed
    aged(path)
    clock.advance(0.4)
    activity.touch()  # 1.0 after the real touch, 0.4 after the suppressed one
    assert touched(path)


def test_the_interval_is_configurable(tmp_path):
    clock, path, activity = make(tmp_path, interval=10.0)
    activity.touch()
    aged(path)
    clock.advance(9)
    activity.touch()
    assert not touched(path)
    clock.advance(1)
    activity.touch()
    assert touched(path)


def test_a_deleted_file_is_recreated(tmp_path):
    clock, path, activity = make(tmp_path)
    path.unlink()
    activity.touch()
    assert path.exists()
    path.unlink()
    clock.advance(0.5)
    activity.touch()
    assert not path.exists()  # the rate limit holds for a missing file too
    clock.advance(0.5)
    activity.touch()
    assert path.exists()


def test_an_unwritable_path_only_logs(tmp_path):
    """Its directory is gone (so neither utime nor creating it works, even as root):
    a warning naming the file, never an exception into the request."""
    home = tmp_path / "home"
    home.mkdir()
    clock, path, activity = make(home)
    shutil.rmtree(home)
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        activity.touch()
        clock.advance(0.5)
        activity.touch()  # rate-limited: not even tried
        clock.advance(0.5)
        activity.touch()
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if e.get("log_namespace") == "cocalcproxy.roles.project.activity"]
    assert [e["log_level"] for e in warnings] == [LogLevel.warn, LogLevel.warn]
    assert all(e["path"] == str(path) and "cannot touch activity file" in e["log_format"] for e in warnings)
    assert not home.exists()
