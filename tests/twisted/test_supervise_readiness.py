"""Readiness probes against real loopback servers in the test's reactor (pytest-twisted):
HTTP over TCP and unix sockets (body drained, nothing left open), raw connect,
deadline, and the early stop when the process ends."""

from __future__ import annotations

import os
import time

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.web.resource import Resource
from twisted.web.server import Site

from cocalcproxy.supervise.readiness import NotReady, ProcessGone, Prober


class Big(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setResponseCode(503)  # any status counts as ready
        return b"x" * (2 << 20)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle() -> None:
    for _ in range(5):
        await task.deferLater(reactor, 0.01, lambda: None)


@pytest_twisted.ensureDeferred
async def test_http_probe_ready_and_drained():
    site = Site(Big())
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    prober = Prober(reactor)
    before = fds()
    try:
        d = prober.wait_ready(host="127.0.0.1", port=port.getHost().port, unix_socket=None, path="/", timeout=5,
                              raw=False, ended=defer.Deferred())
        assert await d.addTimeout(10, reactor) == f"HTTP 503 from 127.0.0.1:{port.getHost().port}"  # for the log
        await prober.close()
        await settle()
        assert fds() <= before  # the 2 MiB body was read and the connection closed
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_http_probe_over_unix_socket(tmp_path):
    path = str(tmp_path / "s")
    site = Site(Big())
    site.noisy = False
    port = reactor.listenUNIX(path, site)
    prober = Prober(reactor)
    try:
        answer = await prober.wait_ready(host="localhost", port=0, unix_socket=path, path="/", timeout=5, raw=False,
                                         ended=defer.Deferred()).addTimeout(10, reactor)
        assert answer == f"HTTP 503 on {path}"
    finally:
        await prober.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_raw_probe_is_a_connect():
    from twisted.internet.protocol import Factory, Protocol

    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    prober = Prober(reactor)
    try:
        answer = await prober.wait_ready(host="127.0.0.1", port=port.getHost().port, unix_socket=None, path="/",
                                         timeout=5, raw=True, ended=defer.Deferred()).addTimeout(10, reactor)
        assert answer == f"connected to 127.0.0.1:{port.getHost().port}"
    finally:
        await prober.close()
        await port.stopListening()
        await settle()


@pytest_twisted.ensureDeferred
async def test_deadline_gives_not_ready():
    from tests.support.procs import free_port

    prober = Prober(reactor)
    started = time.monotonic()
    with pytest.raises(NotReady):
        await prober.wait_ready(host="127.0.0.1", port=free_port(), unix_socket=None, path="/", timeout=0.6,
                                raw=False, ended=defer.Deferred()).addTimeout(10, reactor)
    assert 0.5 < time.monotonic() - started < 2.5
    await prober.close()


@pytest_twisted.ensureDeferred
async def test_process_end_stops_the_wait_at_once():
    from tests.support.procs import free_port

    prober = Prober(reactor)
    ended = defer.Deferred()
    reactor.callLater(0.1, ended.callback, None)
    started = time.monotonic()
    with pytest.raises(ProcessGone):
        await prober.wait_ready(host="127.0.0.1", port=free_port(), unix_socket=None, path="/", timeout=30,
                                raw=False, ended=ended).addTimeout(10, reactor)
    assert time.monotonic() - started < 1.5
    await prober.close()
    await settle()
    assert not [c for c in reactor.getDelayedCalls() if c.active() and "deferLater" in repr(c)]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("interface", ["127.0.0.1", "::1"])
async def test_accepting_sees_a_listener_on_either_loopback(interface):
    from twisted.internet.protocol import Factory, Protocol

    try:
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface=interface)
    except Exception:  # noqa: BLE001
        pytest.skip(f"no {interface} on this machine")
    prober = Prober(reactor)
    before = fds()
    try:
        assert await prober.accepting(host="localhost", port=port.getHost().port) is True
    finally:
        await port.stopListening()
        await settle()
    assert fds() <= before  # the check's connection is gone
    await prober.close()


@pytest_twisted.ensureDeferred
async def test_accepting_is_false_when_nothing_listens():
    from tests.support.procs import free_port

    prober = Prober(reactor)
    assert await prober.accepting(host="localhost", port=free_port()) is False
    await prober.close()


@pytest_twisted.ensureDeferred
async def test_localhost_probe_names_the_ipv6_loopback_when_only_it_answers():
    try:
        port = reactor.listenTCP(0, Site(Big()), interface="::1")
    except Exception:  # noqa: BLE001
        pytest.skip("no ::1 on this machine")
    port.factory.noisy = False
    prober = Prober(reactor)
    try:
        answer = await prober.wait_ready(host="localhost", port=port.getHost().port, unix_socket=None, path="/",
                                         timeout=5, raw=False, ended=defer.Deferred()).addTimeout(10, reactor)
        assert answer == f"HTTP 503 from [::1]:{port.getHost().port}"
    finally:
        await prober.close()
        await port.stopListening()
        await settle()
