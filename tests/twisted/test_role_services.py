"""``ReloadService`` (SIGHUP) without sending signals: reloaders run in order, a
failing one is logged and the others still run, and the SIGHUP handler is
installed on start and the previous one restored on stop."""

from __future__ import annotations

import signal

import pytest
from twisted.logger import LogLevel, globalLogPublisher

from cocalcproxy.roles.services import ReloadService


class ThreadCalls:
    """The one reactor method the signal handler uses."""

    def __init__(self):
        self.calls = []

    def callFromThread(self, f, *args, **kw):
        self.calls.append((f, args, kw))


@pytest.fixture
def previous_handler():
    """A handler of our own in place before the service starts; the original
    one is back after the test whatever happens."""
    original = signal.getsignal(signal.SIGHUP)

    def ours(signum, frame):
        raise AssertionError("no SIGHUP is sent in these tests")

    signal.signal(signal.SIGHUP, ours)
    yield ours
    signal.signal(signal.SIGHUP, original)


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def ours(events):
    return [e for e in events if e.get("log_namespace") == "cocalcproxy.roles.services"]


def test_reloaders_run_in_the_order_they_were_added(logged):
    service = ReloadService(ThreadCalls())
    ran = []
    service.add("first", lambda: ran.append("first"))
    service.add("second", lambda: ran.append("second"))
    service.add("third", lambda: ran.append("third"))
    service.reload()
    assert ran == ["first", "second", "third"]
    service.reload()
    assert ran == ["first", "second", "third"] * 2  # every SIGHUP runs all of them again
    infos = [e["what"] for e in ours(logged) if e["log_level"] is LogLevel.info]
    assert infos == ["first", "second", "third"] * 2  # "SIGHUP: reloaded {what}"


def test_a_failing_reloader_is_logged_and_the_others_still_run(logged):
    service = ReloadService(ThreadCalls())
    ran = []

    def broken():
        ran.append("broken")
        raise ValueError("bad certificate file")

    service.add("before", lambda: ran.append("before"))
    service.add("TLS key and certificate", broken)
    service.add("after", lambda: ran.append("after"))
    service.reload()  # does not raise
    assert ran == ["before", "broken", "after"]
    events = ours(logged)
    failures = [e for e in events if e["log_level"] is LogLevel.error]
    assert len(failures) == 1 and "log_failure" not in failures[0]  # one line: the operator's file, no traceback
    assert failures[0]["what"] == "TLS key and certificate" and failures[0]["error"] == "bad certificate file"
    assert "keeping the previous settings" in failures[0]["log_format"]
    reloaded = [e["what"] for e in events if e["log_level"] is LogLevel.info]
    assert reloaded == ["before", "after"]  # the failed one is not reported as reloaded


def test_nothing_to_reload_says_so(logged):
    ReloadService(ThreadCalls()).reload()
    [event] = ours(logged)
    assert event["log_level"] is LogLevel.info and "nothing to reload" in event["log_format"]


def test_sighup_handler_installed_on_start_and_restored_on_stop(previous_handler):
    reactor = ThreadCalls()
    service = ReloadService(reactor)
    ran = []
    service.add("servers", lambda: ran.append("servers"))
    assert signal.getsignal(signal.SIGHUP) is previous_handler  # nothing installed before start
    service.startService()
    handler = signal.getsignal(signal.SIGHUP)
    assert handler == service._on_signal and service.running
    handler(signal.SIGHUP, None)  # as the signal would call it
    assert ran == []  # not in the signal handler: handed to the reactor thread
    assert reactor.calls == [(service.reload, (), {})]
    service.stopService()
    assert signal.getsignal(signal.SIGHUP) is previous_handler and not service.running
    service.stopService()  # a second stop leaves the restored handler alone
    assert signal.getsignal(signal.SIGHUP) is previous_handler
