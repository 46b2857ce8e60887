"""The one connector (``cocalcproxy/net/connect.py``) on fake reactors: no sockets.

``connect`` for IP literals builds a write-through ``fasttcp.FastConnector``
directly on the reactor; that class is Twisted's ``tcp.Connector``, which makes
a real socket even on a ``MemoryReactorClock`` and connects it on the first
reactor turn.  So these tests replace the module's ``connect_tcp`` with the
reactor's own ``connectTCP`` (what ``FastConnector`` would do, minus the
socket): ``reactor.tcpClients`` then records each attempt, and the test
completes it (``buildProtocol`` + ``makeConnection``) or fails it
(``clientConnectionFailed``), as in STYLE §4 layer 3.  The write-through
transport itself is tested on real loopback in ``tests/integration/test_fasttcp.py``.
"""

from __future__ import annotations

import pytest
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from cocalcproxy.net import connect as connect_module
from cocalcproxy.net.connect import AddressEndpoint, Outbound, addresses_for, connect, first_refused_next
from cocalcproxy.routing.addresses import Address
from tests.support.results import failure_result_of, recorded, success_result_of


class Probe(Outbound):
    """An ``Outbound`` that notes when it was connected."""

    def __init__(self):
        self.connected = False

    def connectionMade(self):
        self.connected = True
        super().connectionMade()


@pytest.fixture
def reactor(monkeypatch):
    r = MemoryReactorClock()
    r.advance(100)
    tcp_calls = []

    def connect_tcp(reactor, host, port, factory, timeout):
        assert reactor is r
        tcp_calls.append((host, port, timeout))
        return reactor.connectTCP(host, port, factory, timeout)

    monkeypatch.setattr(connect_module, "connect_tcp", connect_tcp)
    r.tcp_calls = tcp_calls
    return r


def complete(factory, transport=None):
    """The connection is made: what the reactor does when connect() succeeds."""
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 0))
    proto.makeConnection(transport or StringTransport())
    return proto


def fail(reactor, index, exc):
    _, _, factory, _, _ = reactor.tcpClients[index]
    factory.clientConnectionFailed(reactor.connectors[index], Failure(exc))


# ------------------------------------------------------------ addresses_for


def test_localhost_means_both_loopbacks_in_order():
    assert addresses_for("localhost") == ("127.0.0.1", "::1")
    assert addresses_for("LocalHost") == ("127.0.0.1", "::1")
    assert addresses_for("127.0.0.1") == ("127.0.0.1",)
    assert addresses_for("::1") == ("::1",)
    assert addresses_for("example.test") == ("example.test",)


# ------------------------------------------------------------ connect


def test_ip_literal_connects_once_and_fires_from_connection_made(reactor):
    d = connect(reactor, Address("10.1.2.3", 8000), Probe, timeout=5)
    got = recorded(d)
    [(host, port, factory, timeout, _)] = reactor.tcpClients
    assert (host, port, timeout) == ("10.1.2.3", 8000, 5)
    assert got == []  # nothing until the connection is made
    proto = complete(factory)
    assert got == [proto] and isinstance(proto, Probe) and proto.connected
    assert proto.factory is factory and proto.made is None


def test_ipv6_literal_is_used_as_is(reactor):
    connect(reactor, Address("::1", 8000), Probe, timeout=5)
    assert [c[:2] for c in reactor.tcpClients] == [("::1", 8000)]


def test_localhost_tries_127_0_0_1_then_ipv6_only_when_refused(reactor):
    d = connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    got = recorded(d)
    assert [c[:2] for c in reactor.tcpClients] == [("127.0.0.1", 8000)]
    fail(reactor, 0, error.ConnectionRefusedError())
    assert [c[:2] for c in reactor.tcpClients] == [("127.0.0.1", 8000), ("::1", 8000)]
    assert got == []
    proto = complete(reactor.tcpClients[1][2])
    assert got == [proto]


def test_localhost_on_127_0_0_1_never_tries_ipv6(reactor):
    d = connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    proto = complete(reactor.tcpClients[0][2])
    assert success_result_of(d) is proto
    assert len(reactor.tcpClients) == 1


def test_a_timeout_does_not_move_on_to_ipv6(reactor):
    """Only "refused" says nothing listens there; a timeout may be a slow server
    on 127.0.0.1, and the whole connect timeout has been spent on it anyway."""
    d = connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    fail(reactor, 0, error.TimeoutError())
    failure_result_of(d, error.TimeoutError)
    assert len(reactor.tcpClients) == 1


def test_other_connect_errors_do_not_move_on_either(reactor):
    d = connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    fail(reactor, 0, error.NoRouteError())
    failure_result_of(d, error.NoRouteError)
    assert len(reactor.tcpClients) == 1


def test_both_loopbacks_refused_is_refused(reactor):
    d = connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    fail(reactor, 0, error.ConnectionRefusedError("v4"))
    fail(reactor, 1, error.ConnectionRefusedError("v6"))
    f = failure_result_of(d, error.ConnectionRefusedError)
    assert "v6" in str(f.value)  # the last failure


def test_the_ipv6_attempt_gets_what_is_left_of_the_timeout(reactor):
    connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    reactor.advance(2)  # a slow refusal
    fail(reactor, 0, error.ConnectionRefusedError())
    assert [t for _, _, t in reactor.tcp_calls] == [5, 3]
    connect(reactor, Address("localhost", 8001), Probe, timeout=5)
    reactor.advance(10)  # nothing left: still a short try, never a negative timeout
    fail(reactor, 2, error.ConnectionRefusedError())
    assert reactor.tcp_calls[-1] == ("::1", 8001, 0.1)


def test_cancelling_stops_the_connector(reactor):
    d = connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    d.cancel()
    failure_result_of(d, defer.CancelledError)
    assert reactor.connectors[0].stoppedConnecting
    assert len(reactor.tcpClients) == 1  # and does not go on to ::1


def test_cancelling_with_twisteds_connector_behaviour_does_not_move_on(reactor):
    """Twisted's real ``Connector.stopConnecting`` reports ``UserError`` through
    ``clientConnectionFailed`` before the canceller returns: the connect then
    fails with that, and still does not go on to ::1."""
    d = connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    connector = reactor.connectors[0]
    factory = reactor.tcpClients[0][2]

    def stop_connecting():
        connector.stoppedConnecting = True
        factory.clientConnectionFailed(connector, Failure(error.UserError()))

    connector.stopConnecting = stop_connecting
    d.cancel()
    failure_result_of(d, error.UserError, defer.CancelledError)
    assert connector.stoppedConnecting and len(reactor.tcpClients) == 1


def test_cancelling_during_the_ipv6_attempt_stops_that_connector(reactor):
    d = connect(reactor, Address("localhost", 8000), Probe, timeout=5)
    fail(reactor, 0, error.ConnectionRefusedError())
    d.cancel()
    failure_result_of(d, defer.CancelledError)
    assert not reactor.connectors[0].stoppedConnecting and reactor.connectors[1].stoppedConnecting


def test_a_connection_made_after_cancelling_announces_nothing(reactor):
    d = connect(reactor, Address("127.0.0.1", 8000), Probe, timeout=5)
    d.cancel()
    failure_result_of(d, defer.CancelledError)
    proto = complete(reactor.tcpClients[0][2])  # the connect raced the cancel
    assert proto.connected and proto.made is None  # the fired Deferred is not fired again


def test_unix_socket_path(reactor):
    d = connect(reactor, Address.unix("/run/app.sock"), Probe, timeout=2.5)
    [(path, factory, timeout, _)] = reactor.unixClients
    assert (path, timeout) == ("/run/app.sock", 2)  # connectUNIX takes whole seconds
    assert reactor.tcpClients == [] and reactor.tcp_calls == []
    proto = factory.buildProtocol(UNIXAddress("/run/app.sock"))
    proto.makeConnection(StringTransport())
    assert success_result_of(d) is proto


def test_unix_socket_timeout_is_at_least_a_second(reactor):
    connect(reactor, Address.unix("/run/app.sock"), Probe, timeout=0.2)
    assert reactor.unixClients[0][2] == 1


def test_unix_socket_cancel_stops_the_connector(reactor):
    d = connect(reactor, Address.unix("/run/app.sock"), Probe, timeout=5)
    d.cancel()
    failure_result_of(d, defer.CancelledError)
    assert reactor.connectors[0].stoppedConnecting


def test_unix_socket_refused(reactor):
    d = connect(reactor, Address.unix("/run/app.sock"), Probe, timeout=5)
    _, factory, _, _ = reactor.unixClients[0]
    factory.clientConnectionFailed(reactor.connectors[0], Failure(error.ConnectionRefusedError()))
    failure_result_of(d, error.ConnectionRefusedError)


def test_a_connector_that_raises_is_a_failed_connect(reactor, monkeypatch):
    def broken(reactor, host, port, factory, timeout):
        raise OSError("too many open files")

    monkeypatch.setattr(connect_module, "connect_tcp", broken)
    d = connect(reactor, Address("127.0.0.1", 8000), Probe, timeout=5)
    failure_result_of(d, OSError)


def test_a_host_name_goes_through_hostname_endpoint_with_the_whole_timeout(reactor, monkeypatch):
    made = []

    class Endpoint:
        def __init__(self, reactor, host, port, timeout):
            made.append((host, port, timeout))
            self.d = defer.Deferred()

        def connect(self, factory):
            made.append(factory)
            return self.d

    monkeypatch.setattr(connect_module, "HostnameEndpoint", Endpoint)
    connect(reactor, Address("backend.example", 8443), Probe, timeout=7)
    assert made[0] == ("backend.example", 8443, 7)
    assert isinstance(made[1].buildProtocol(None), Probe)
    assert reactor.tcp_calls == []  # resolution (and happy eyeballs) is Twisted's


# ------------------------------------------------------------ first_refused_next


class Attempts:
    """Attempt callables whose Deferreds the test fires; records what was tried."""

    def __init__(self, n: int):
        self.deferreds = [defer.Deferred(self._cancelled(i)) for i in range(n)]
        self.tried: list[int] = []
        self.cancelled: list[int] = []

    def _cancelled(self, i):
        return lambda d: self.cancelled.append(i)

    def __iter__(self):
        for i, d in enumerate(self.deferreds):
            yield (lambda i=i, d=d: (self.tried.append(i), d)[1])


def test_first_success_wins_and_nothing_else_is_tried():
    a = Attempts(3)
    d = first_refused_next(list(a))
    a.deferreds[0].callback("first")
    assert success_result_of(d) == "first" and a.tried == [0]


def test_refused_moves_on_in_order():
    a = Attempts(3)
    d = first_refused_next(list(a))
    assert a.tried == [0]
    a.deferreds[0].errback(error.ConnectionRefusedError())
    assert a.tried == [0, 1]
    a.deferreds[1].errback(error.ConnectionRefusedError())
    assert a.tried == [0, 1, 2]
    a.deferreds[2].callback("third")
    assert success_result_of(d) == "third"


def test_the_last_refusal_is_the_failure():
    a = Attempts(2)
    d = first_refused_next(list(a))
    a.deferreds[0].errback(error.ConnectionRefusedError("one"))
    a.deferreds[1].errback(error.ConnectionRefusedError("two"))
    assert "two" in str(failure_result_of(d, error.ConnectionRefusedError).value)


@pytest.mark.parametrize("exc", [error.TimeoutError(), error.ConnectError(), ValueError("bug")])
def test_any_other_failure_ends_the_search(exc):
    a = Attempts(2)
    d = first_refused_next(list(a))
    a.deferreds[0].errback(exc)
    failure_result_of(d, type(exc))
    assert a.tried == [0]


def test_synchronous_attempts():
    d = first_refused_next([lambda: defer.fail(error.ConnectionRefusedError()), lambda: defer.succeed("second")])
    assert success_result_of(d) == "second"


def test_cancel_cancels_the_attempt_in_flight_only():
    a = Attempts(3)
    d = first_refused_next(list(a))
    a.deferreds[0].errback(error.ConnectionRefusedError())
    d.cancel()
    failure_result_of(d, defer.CancelledError)
    assert a.cancelled == [1] and a.tried == [0, 1]  # the third is never tried


class TooLate(defer.Deferred):
    """An attempt that cancelling cannot stop (its connection is already being
    made): ``cancel`` does nothing."""

    def cancel(self):
        pass


def test_a_success_after_cancelling_closes_that_connection():
    late = TooLate()
    d = first_refused_next([lambda: late])
    d.cancel()
    failure_result_of(d, defer.CancelledError)
    transport = StringTransport()
    aborted = []
    transport.abortConnection = lambda: aborted.append(True)

    class Proto:
        pass

    Proto.transport = transport
    late.callback(Proto)
    assert aborted == [True]  # nobody wants this connection any more


# ------------------------------------------------------------ AddressEndpoint


class Noted(Protocol):
    pass


def endpoint_complete(reactor, index):
    factory = reactor.tcpClients[index][2]
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 0))
    proto.makeConnection(StringTransport())
    return proto


def test_endpoint_localhost_on_127_0_0_1():
    reactor = MemoryReactorClock()
    ep = AddressEndpoint(reactor, Address("localhost", 8000), timeout=3)
    d = ep.connect(Factory.forProtocol(Noted))
    assert [c[:2] + (c[3],) for c in reactor.tcpClients] == [("127.0.0.1", 8000, 3)]
    assert ep.connected_to is None
    endpoint_complete(reactor, 0)
    assert isinstance(success_result_of(d), Noted)
    assert ep.connected_to == "127.0.0.1:8000"


def test_endpoint_localhost_falls_back_to_ipv6_when_refused():
    reactor = MemoryReactorClock()
    ep = AddressEndpoint(reactor, Address("localhost", 8000), timeout=3)
    d = ep.connect(Factory.forProtocol(Noted))
    reactor.tcpClients[0][2].clientConnectionFailed(reactor.connectors[0], Failure(error.ConnectionRefusedError()))
    assert [c[:2] for c in reactor.tcpClients] == [("127.0.0.1", 8000), ("::1", 8000)]
    endpoint_complete(reactor, 1)
    assert isinstance(success_result_of(d), Noted)
    assert ep.connected_to == "[::1]:8000"  # for the log: which loopback answered


def test_endpoint_timeout_does_not_fall_back():
    reactor = MemoryReactorClock()
    ep = AddressEndpoint(reactor, Address("localhost", 8000), timeout=3)
    d = ep.connect(Factory.forProtocol(Noted))
    reactor.tcpClients[0][2].clientConnectionFailed(reactor.connectors[0], Failure(error.TimeoutError()))
    failure_result_of(d, error.TimeoutError)
    assert len(reactor.tcpClients) == 1 and ep.connected_to is None


def test_endpoint_unix_socket():
    reactor = MemoryReactorClock()
    ep = AddressEndpoint(reactor, Address.unix("/run/s.sock"), timeout=3)
    d = ep.connect(Factory.forProtocol(Noted))
    [(path, factory, timeout, _)] = reactor.unixClients
    assert (path, timeout) == ("/run/s.sock", 3)
    factory.buildProtocol(UNIXAddress(path)).makeConnection(StringTransport())
    assert isinstance(success_result_of(d), Noted)
    assert ep.connected_to == "/run/s.sock"


def test_endpoint_cancel_stops_the_connector():
    reactor = MemoryReactorClock()
    ep = AddressEndpoint(reactor, Address("127.0.0.1", 8000), timeout=3)
    d = ep.connect(Factory.forProtocol(Noted))
    d.cancel()
    failure_result_of(d, error.ConnectingCancelledError, defer.CancelledError)
    assert reactor.connectors[0].stoppedConnecting


def test_endpoint_ipv6_literal_uses_an_ipv6_endpoint():
    reactor = MemoryReactorClock()
    ep = AddressEndpoint(reactor, Address("::1", 8000), timeout=3)
    ep.connect(Factory.forProtocol(Noted))
    assert reactor.tcpClients[0][:2] == ("::1", 8000)
    assert isinstance(reactor.connectors[0].getDestination(), IPv6Address)
    assert repr(ep) == "<AddressEndpoint [::1]:8000>"
