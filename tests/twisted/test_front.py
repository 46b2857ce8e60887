"""The client-side protocol wired to fake transports and a fake clock (no sockets).

These pin down the relay's wiring that loopback tests can only observe from
outside: which transport is whose producer, which pause reason is held, what is
written where after each step, and the timeouts driven by a ``Clock``.
"""

from __future__ import annotations

import re

from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from cocalcproxy.net.gate import BACKPRESSURE, CONNECTING, PIPELINE
from cocalcproxy.net.pool import BackendPool
from cocalcproxy.proxy.back import HttpBack
from cocalcproxy.proxy.factory import ProxyConfig, ProxyFactory
from cocalcproxy.proxy.tracker import ConnectionTracker
from cocalcproxy.routing.project import ProjectRouting, route_project
from tests.support.results import recorded


class Transport(StringTransport):
    """StringTransport plus the half-close method TCP transports have."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True


class Harness:
    def __init__(self, **config):
        self.clock = MemoryReactorClock()
        self.config = ProxyConfig(**config)
        self.pool = BackendPool(self.clock)
        self.tracker = ConnectionTracker(self.clock, self.config.max_connections, self.pool)
        self.routing = ProjectRouting(base=b"/")
        self.connects: list[tuple[str, int, defer.Deferred]] = []
        self.connect_results: list[list] = []  # what each connect's Deferred fired with, as the front saw it

        def connect(host, port, key):
            d = defer.Deferred()
            self.connects.append((host, port, d))
            self.connect_results.append(recorded(d))
            return d

        self.factory = ProxyFactory(
            self.clock, self.config, lambda req: route_project(self.routing, req.target, req), self.tracker,
            self.pool, connect=connect,
        )

    def client(self):
        proto = self.factory.buildProtocol(None)
        t = Transport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        proto.makeConnection(t)
        return proto, t

    def complete_connect(self, index: int = -1):
        host, port, d = self.connects[index]
        back = HttpBack((host, port), 65536)
        bt = Transport()
        back.makeConnection(bt)
        d.callback(back)
        return back, bt


GET = b"GET /proxy/9000/a?b=c HTTP/1.1\r\nHost: h\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def test_simple_get_is_forwarded_and_backend_pooled():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    assert h.connects[0][:2] == ("localhost", 9000)
    assert ct.producerState == "paused"  # waiting for the backend: CONNECTING holds the client
    back, bt = h.complete_connect()
    assert ct.producerState == "producing"
    sent = bt.value()
    assert sent.startswith(b"GET /a?b=c HTTP/1.1\r\nHost: h\r\n")
    assert b"X-Forwarded-Prefix: /proxy/9000\r\n" in sent
    assert ct.producer is back.gate  # the client socket throttles the backend's reads
    back.dataReceived(OK)
    assert ct.value().endswith(b"\r\n\r\nhi")
    assert ct.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert ct.producer is None
    assert len(h.pool) == 1 and back.front is None
    assert not ct.disconnecting


def test_second_request_reuses_pooled_backend():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.dataReceived(OK)
    bt.clear()
    front.dataReceived(GET)
    assert len(h.connects) == 1
    assert bt.value().startswith(b"GET /a?b=c HTTP/1.1")
    back.dataReceived(OK)
    assert ct.value().count(b"HTTP/1.1 200 OK") == 2


def test_pipelined_requests_wait_for_the_previous_response():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET + GET.replace(b"/a", b"/second"))
    back, bt = h.complete_connect()
    assert bt.value().count(b"GET ") == 1
    back.dataReceived(OK)
    assert bt.value().count(b"GET ") == 2
    assert b"GET /second?b=c" in bt.value()
    back.dataReceived(OK)
    assert ct.value().count(b"200 OK") == 2


def test_large_pipelined_backlog_pauses_the_client():
    h = Harness(max_header_bytes=1024)
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    front.dataReceived(GET * 30)  # ~1.3 KiB of pipelined requests: over the limit
    assert front.gate.reasons & PIPELINE
    assert ct.producerState == "paused"
    for _ in range(10):  # answering them drains the backlog below the limit
        back.dataReceived(OK)
    assert not front.gate.reasons & PIPELINE
    assert ct.producerState == "producing"
    assert ct.value().count(b"200 OK") == 10


def test_request_body_backpressure_pauses_client_reads():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"PUT /proxy/9000/up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345")
    back, bt = h.complete_connect()
    assert bt.producer is front.gate
    assert bt.value().endswith(b"\r\n\r\n12345")
    bt.producer.pauseProducing()  # the backend socket's buffer is full
    assert ct.producerState == "paused" and front.gate.reasons == BACKPRESSURE
    bt.producer.resumeProducing()
    assert ct.producerState == "producing"
    front.dataReceived(b"67890")
    assert bt.value().endswith(b"1234567890")
    assert bt.producer is None  # request done: no longer a producer for the backend


def test_backpressure_reason_is_cleared_when_request_ends():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"PUT /proxy/9000/up HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")
    back, bt = h.complete_connect()
    bt.producer.pauseProducing()
    front.dataReceived(b"abc")  # (bytes the kernel already had)
    assert front.gate.reasons == 0 and ct.producerState == "producing"


def test_connect_refused_gives_502_and_close():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    h.connects[0][2].errback(Failure(error.ConnectionRefusedError()))
    assert ct.value().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"Connection: close" in ct.value()
    assert ct.disconnecting
    assert front.gate.reasons & CONNECTING == 0


def test_connect_timeout_gives_504():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"GET /proxy/9000/ HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\n\r\n")
    h.connects[0][2].errback(Failure(error.TimeoutError()))
    assert ct.value().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert b'"status": 504' in ct.value()


def test_client_gone_while_connecting_cancels_the_connect():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    front.connectionLost(Failure(error.ConnectionDone()))
    [result] = h.connect_results[0]  # cancelled, and the front was told so
    assert isinstance(result, Failure) and result.check(defer.CancelledError)
    assert front not in h.tracker.connections
    assert ct.value() == b""  # nobody left to answer


def test_header_timeout_answers_408():
    h = Harness(header_timeout=5)
    front, ct = h.client()
    front.dataReceived(b"GET /proxy/9000/ HTTP/1.1\r\nHo")
    h.clock.advance(4)
    h.tracker.sweep()
    assert ct.value() == b""
    h.clock.advance(2)
    h.tracker.sweep()
    assert ct.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert ct.disconnecting


def test_idle_keepalive_connection_closes_silently():
    h = Harness(idle_timeout=10)
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.dataReceived(OK)
    ct.clear()
    h.clock.advance(11)
    h.tracker.sweep()
    assert ct.value() == b"" and ct.disconnecting


def test_silent_new_connection_gets_408_at_the_header_timeout():
    h = Harness(header_timeout=5, idle_timeout=300)
    front, ct = h.client()
    h.clock.advance(4.9)
    h.tracker.sweep()
    assert ct.value() == b"" and not ct.disconnecting
    h.clock.advance(0.1)
    h.tracker.sweep()
    assert ct.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n") and ct.disconnecting


def test_dripping_a_head_does_not_extend_the_header_timeout():
    """Each byte is progress, but the deadline runs from the first one."""
    h = Harness(header_timeout=5, idle_timeout=300)
    front, ct = h.client()
    head = b"GET /proxy/9000/ HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"s" * 100
    for i in range(10):
        front.dataReceived(head[i:i + 1])
        h.clock.advance(0.49)
        h.tracker.sweep()
    assert ct.value() == b""  # 4.9 s since the first byte
    front.dataReceived(head[10:11])
    h.clock.advance(0.1)
    h.tracker.sweep()
    assert ct.value().startswith(b"HTTP/1.1 408 ") and ct.disconnecting
    assert h.connects == []


def test_next_head_on_a_keep_alive_connection_gets_its_own_header_timeout():
    """After a response the connection idles (idle timeout); the first byte of
    the next head starts the header timeout."""
    h = Harness(header_timeout=5, idle_timeout=10)
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.dataReceived(OK)
    ct.clear()
    h.clock.advance(3)  # idle, within the idle timeout
    h.tracker.sweep()
    front.dataReceived(b"GET /proxy/9000/ HTTP/1.1\r\n")  # half a head
    h.clock.advance(4.9)  # 7.9 s after the response: the header timeout counts from the head's first byte
    h.tracker.sweep()
    assert ct.value() == b"" and not ct.disconnecting
    h.clock.advance(0.1)
    h.tracker.sweep()
    assert ct.value().startswith(b"HTTP/1.1 408 ") and ct.disconnecting


def test_keep_alive_connection_reused_within_the_idle_timeout():
    h = Harness(header_timeout=5, idle_timeout=10)
    front, ct = h.client()
    for i in range(3):
        front.dataReceived(GET)
        if i == 0:
            back, bt = h.complete_connect()
        back.dataReceived(OK)
        h.clock.advance(9.9)  # idle just short of the timeout each time
        h.tracker.sweep()
        assert not ct.disconnecting
    assert ct.value().count(b"HTTP/1.1 200 OK") == 3 and len(h.connects) == 1
    h.clock.advance(0.1)
    h.tracker.sweep()
    assert ct.disconnecting and ct.value().count(b"HTTP/1.1 ") == 3  # closed quietly, no 408


def test_slow_request_body_is_not_a_header_timeout():
    h = Harness(header_timeout=5, idle_timeout=10)
    front, ct = h.client()
    front.dataReceived(b"POST /proxy/9000/up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello")
    back, bt = h.complete_connect()
    h.clock.advance(60)  # longer than both client timeouts, in the middle of the body
    h.tracker.sweep()
    assert ct.value() == b"" and not ct.disconnecting and not bt.disconnecting
    front.dataReceived(b"world")
    assert bt.value().endswith(b"\r\n\r\nhelloworld")
    back.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert ct.value().startswith(b"HTTP/1.1 200 OK\r\n") and ct.value().endswith(b"ok")


def test_slow_backend_is_not_cut_by_client_timeouts_and_idle_applies_after():
    h = Harness(header_timeout=5, idle_timeout=10)
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    h.clock.advance(60)  # the backend takes its time
    h.tracker.sweep()
    assert ct.value() == b"" and not ct.disconnecting
    back.dataReceived(OK)
    assert ct.value().endswith(b"\r\n\r\nhi") and not ct.disconnecting
    ct.clear()
    h.clock.advance(9.9)
    h.tracker.sweep()
    assert not ct.disconnecting
    h.clock.advance(0.1)
    h.tracker.sweep()
    assert ct.disconnecting and ct.value() == b""  # then the idle timeout: closed quietly


def test_response_before_request_body_ends_closes_both():
    """The client is still sending its body: it gets FIN after the answer and what
    it still sends is dropped (a lingering close), then the connection closes."""
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"POST /proxy/9000/up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc")
    back, bt = h.complete_connect()
    back.dataReceived(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert b"Connection: close" in ct.value()
    assert bt.disconnecting and len(h.pool) == 0
    assert ct.write_closed and not ct.disconnecting  # lingering: reading on, answer out
    answered = ct.value()
    front.dataReceived(b"more body the backend will never see")
    assert ct.value() == answered and bt.value().count(b"more body") == 0
    front.readConnectionLost()  # the client is done: nothing unread, close now
    assert ct.disconnecting


def test_lingering_close_ends_at_the_linger_timeout():
    from cocalcproxy import limits

    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"POST /nowhere HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\nabc")
    assert ct.value().startswith(b"HTTP/1.1 404 ") and ct.write_closed and not ct.disconnecting
    for _ in range(3):  # a client that keeps sending keeps the connection up to LINGER_TIME
        h.clock.advance(limits.LINGER_TIMEOUT - 1)
        front.dataReceived(b"x" * 1000)
        h.tracker.sweep()
        assert not ct.disconnecting
    h.clock.advance(limits.LINGER_TIMEOUT + 0.1)
    h.tracker.sweep()
    assert ct.disconnecting


def test_stale_pooled_connection_is_retried_once():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.dataReceived(OK)
    front.dataReceived(GET)  # goes out on the pooled connection
    back.connectionLost(Failure(error.ConnectionDone()))  # backend had closed it
    assert len(h.connects) == 2
    back2, bt2 = h.complete_connect()
    assert bt2.value().startswith(b"GET /a?b=c HTTP/1.1")
    back2.dataReceived(OK)
    assert ct.value().count(b"200 OK") == 2


def test_backend_death_mid_body_closes_client():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    back.connectionLost(Failure(error.ConnectionLost()))
    assert ct.value().endswith(b"half")
    assert ct.disconnecting


def test_backend_closing_before_answer_gives_502():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.connectionLost(Failure(error.ConnectionDone()))
    assert ct.value().startswith(b"HTTP/1.1 502 ")


def test_close_delimited_response_ends_with_connection_close():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.dataReceived(b"HTTP/1.1 200 OK\r\n\r\nstream")
    assert b"Connection: close\r\n" in ct.value()
    back.readConnectionLost()
    assert ct.value().endswith(b"stream")
    assert ct.disconnecting and len(h.pool) == 0


def test_http10_client_gets_chunked_body_decoded():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"GET /proxy/9000/ HTTP/1.0\r\n\r\n")
    back, bt = h.complete_connect()
    assert bt.value().startswith(b"GET / HTTP/1.0\r\n")
    back.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    out = ct.value()
    assert b"Transfer-Encoding" not in out and out.endswith(b"\r\n\r\nhello")
    assert ct.disconnecting


def test_head_response_without_body_keeps_alive():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"HEAD /proxy/9000/ HTTP/1.1\r\nHost: h\r\n\r\n")
    back, bt = h.complete_connect()
    back.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert ct.value().endswith(b"Content-Length: 1000\r\n\r\n")
    assert not ct.disconnecting and len(h.pool) == 1


def test_bad_response_head_gives_502():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.dataReceived(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")
    assert ct.value().startswith(b"HTTP/1.1 502 ")
    assert bt.disconnecting


def test_upgrade_switches_to_tunnel_with_half_close():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(
        b"GET /proxy/9000/ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    back, bt = h.complete_connect()
    assert b"Connection: upgrade\r\n" in bt.value() and b"Upgrade: websocket\r\n" in bt.value()
    back.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
    assert ct.value().endswith(b"\r\n\r\nearly")
    assert b"Upgrade: websocket" in ct.value()
    assert ct.producer is back.gate and bt.producer is front.gate
    bt.clear()
    front.dataReceived(b"\x81\x00")
    assert bt.value() == b"\x81\x00"
    front.readConnectionLost()  # client FIN → backend gets FIN, backend may still talk
    assert bt.write_closed and not bt.disconnecting
    back.dataReceived(b"bye")
    assert ct.value().endswith(b"bye")
    back.readConnectionLost()  # both directions done: neither can send more, close both
    assert ct.disconnecting and bt.disconnecting


def test_non_101_answer_to_upgrade_is_an_ordinary_response():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"GET /proxy/9000/ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    back, bt = h.complete_connect()
    back.dataReceived(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    assert ct.value().startswith(b"HTTP/1.1 403 Forbidden\r\n") and ct.value().endswith(b"no")
    assert not ct.disconnecting


def test_local_answers_and_forwarding_interleave_in_order():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n" + GET + b"GET /nope/x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert ct.value().count(b"HTTP/1.1") == 1  # healthz answered, the forward is waiting
    back, bt = h.complete_connect()
    back.dataReceived(OK)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", ct.value())
    assert statuses == [b"200", b"200", b"404"]


def test_max_connections_refuses_at_accept():
    h = Harness(max_connections=2)
    h.client()
    h.client()
    assert h.factory.buildProtocol(None) is None


def test_untrusted_peer_gets_fresh_forwarded_headers():
    h = Harness(trusted_proxies=())
    front, ct = h.client()
    front.dataReceived(b"GET /proxy/9000/ HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\n\r\n")
    back, bt = h.complete_connect()
    sent = bt.value()
    assert b"6.6.6.6" not in sent and b"evil" not in sent
    assert b"X-Forwarded-For: 127.0.0.1\r\n" in sent and b"X-Forwarded-Host: h\r\n" in sent
    assert b"X-Forwarded-Port: 8080\r\n" in sent and b"X-Forwarded-Proto: http\r\n" in sent


def test_drain_closes_idle_connections_and_finishes_in_flight_ones():
    h = Harness()
    idle, idle_t = h.client()
    busy, busy_t = h.client()
    busy.dataReceived(GET)
    back, bt = h.complete_connect()
    done = h.tracker.drain(5)
    assert idle_t.disconnecting and not busy_t.disconnecting
    drained = recorded(done)
    idle.connectionLost(Failure(error.ConnectionDone()))
    assert drained == []
    back.dataReceived(OK)  # the in-flight response completes...
    assert busy_t.value().endswith(b"hi") and busy_t.disconnecting  # ...then the connection closes
    busy.connectionLost(Failure(error.ConnectionDone()))
    assert drained == [None] and h.clock.getDelayedCalls() == []  # drained; the cut timer is cancelled


def test_drain_timeout_cuts_what_is_left():
    h = Harness()
    busy, busy_t = h.client()
    busy.dataReceived(GET)
    back, bt = h.complete_connect()
    done = h.tracker.drain(5)
    drained = recorded(done)
    h.clock.advance(4.9)
    assert drained == [] and not busy_t.disconnected
    h.clock.advance(0.1)
    assert busy_t.disconnected and bt.disconnected  # aborted, both sides
    assert drained == [None]


# ------------------------------------------------------------ routing seams
class RoutedHarness(Harness):
    """A harness whose router is a function the test sets."""

    def __init__(self, route, **config):
        super().__init__(**config)
        self.factory.router = route


def test_async_route_holds_the_client_until_decided():
    from cocalcproxy.net.gate import HANDOFF
    from cocalcproxy.routing.types import Forward

    pending = defer.Deferred()
    h = RoutedHarness(lambda req: pending)
    front, ct = h.client()
    front.dataReceived(GET)
    assert ct.producerState == "paused" and front.gate.reasons & HANDOFF
    assert h.connects == []
    pending.callback(Forward("127.0.0.1", 9001, b"/x", None, "named"))
    assert not front.gate.reasons & HANDOFF
    assert h.connects[0][:2] == ("127.0.0.1", 9001)
    back, bt = h.complete_connect()
    assert bt.value().startswith(b"GET /x HTTP/1.1\r\n")


def test_async_route_can_reject_and_keeps_the_connection():
    from cocalcproxy.routing.types import Reject

    pending = []
    h = RoutedHarness(lambda req: pending.append(defer.Deferred()) or pending[-1])
    front, ct = h.client()
    front.dataReceived(GET + GET)
    pending[0].callback(Reject(504, "Server 'x' did not start in time."))
    assert ct.value().startswith(b"HTTP/1.1 504 ")
    assert b"did not start in time" in ct.value()
    assert not ct.disconnecting
    assert len(pending) == 2  # the pipelined request is routed next


def test_async_route_failure_is_a_502_never_a_traceback():
    h = RoutedHarness(lambda req: defer.fail(ValueError("secret internals")))
    front, ct = h.client()
    front.dataReceived(GET)
    assert ct.value().startswith(b"HTTP/1.1 502 ")
    assert b"secret internals" not in ct.value()
    assert ct.disconnecting


def test_async_route_result_after_client_left_is_ignored():
    from cocalcproxy.routing.types import Forward

    pending = defer.Deferred()
    h = RoutedHarness(lambda req: pending)
    front, ct = h.client()
    front.dataReceived(GET)
    front.connectionLost(Failure(error.ConnectionDone()))
    pending.callback(Forward("127.0.0.1", 9001, b"/x", None, "named"))
    assert h.connects == [] and ct.value() == b""


class Recorder:
    """A protocol that records what a Handoff gives it."""

    def __init__(self):
        self.data = []
        self.lost = None

    def dataReceived(self, data):
        self.data.append(data)

    def connectionLost(self, reason):
        self.lost = reason


def test_handoff_replays_the_raw_head_and_forwards_everything_after():
    from cocalcproxy.routing.types import Handoff

    started = []

    def start(transport, raw):
        proto = Recorder()
        started.append((transport, raw, proto))
        proto.dataReceived(raw)
        return proto

    h = RoutedHarness(lambda req: Handoff(start))
    front, ct = h.client()
    head = (b"GET /ws?token=a%2Fb HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Dup: 1\r\nX-Dup:  2\r\n\r\n")
    front.dataReceived(head[:20])
    front.dataReceived(head[20:] + b"\x81\x85early")
    transport, raw, proto = started[0]
    assert transport is ct
    assert raw == head + b"\x81\x85early"
    front.dataReceived(b"later")
    assert proto.data[-1] == b"later"
    assert ct.producerState == "producing"
    front.connectionLost(Failure(error.ConnectionDone()))
    assert proto.lost is not None


def test_partial_pipelined_head_after_a_response_gets_the_header_timeout():
    """A client that leaves half a head behind its first request must not escape
    every timeout (slowloris): the deadline is re-armed when the response ends."""
    h = Harness(header_timeout=5, idle_timeout=300)
    front, ct = h.client()
    front.dataReceived(GET + b"GET /proxy/9000/next HT")
    back, bt = h.complete_connect()
    back.dataReceived(OK)
    assert ct.value().endswith(b"hi") and not ct.disconnecting
    ct.clear()
    h.clock.advance(6)
    h.tracker.sweep()
    assert ct.value().startswith(b"HTTP/1.1 408 ")
    assert ct.disconnecting


def test_backend_with_bytes_beyond_its_response_is_never_pooled():
    """Extra bytes after a complete response belong to no request: pooling the
    connection would hand them to the next client as its answer."""
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET)
    back, bt = h.complete_connect()
    back.dataReceived(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
    assert len(h.pool) == 0 and bt.disconnecting
    other, ot = h.client()
    other.dataReceived(GET)
    assert len(h.connects) == 2  # a fresh connection, not the poisoned one
    back2, bt2 = h.complete_connect()
    back2.dataReceived(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert ot.value().startswith(b"HTTP/1.1 404 ") and b"secret" not in ot.value()


def test_client_fin_after_pipelined_requests_answers_all_then_closes():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(GET + GET.replace(b"/a", b"/second"))
    front.readConnectionLost()
    back, bt = h.complete_connect()
    back.dataReceived(OK)
    assert not ct.disconnecting
    assert bt.value().count(b"GET ") == 2
    back.dataReceived(OK)
    assert ct.value().count(b"200 OK") == 2
    assert ct.disconnecting


def test_client_fin_mid_body_aborts_the_backend():
    h = Harness()
    front, ct = h.client()
    front.dataReceived(b"POST /proxy/9000/up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc")
    back, bt = h.complete_connect()
    front.readConnectionLost()
    assert bt.disconnecting or bt.disconnected
    assert ct.disconnecting


def test_body_bytes_delivered_while_connecting_do_not_stall_the_upload():
    """Over TLS, pausing the socket does not stop bytes TLS already decrypted:
    more than ``max_header_bytes`` of the request's own body can arrive while
    connecting.  They go to the backend once it is there, and the client reads
    on (seen as an upload through the TLS hub stalling for good at ~80 kB)."""
    h = Harness(max_header_bytes=1024)
    front, ct = h.client()
    front.dataReceived(b"PUT /proxy/9000/up HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(10):
        front.dataReceived(b"u" * 3000)  # 30 kB of body the TLS layer still hands over
    back, bt = h.complete_connect()
    assert bt.value().endswith(b"u" * 30000)
    assert front.gate.reasons == 0 and ct.producerState == "producing"
    front.dataReceived(b"v" * 70000)
    assert bt.value().endswith(b"u" * 30000 + b"v" * 70000)


def test_body_bytes_delivered_while_routing_do_not_stall_the_upload():
    from cocalcproxy.routing.types import Forward

    pending = defer.Deferred()
    h = RoutedHarness(lambda req: pending, max_header_bytes=1024)
    front, ct = h.client()
    front.dataReceived(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 50000\r\n\r\n")
    for _ in range(10):
        front.dataReceived(b"u" * 3000)
    pending.callback(Forward("127.0.0.1", 9001, b"/x", None, "named"))
    back, bt = h.complete_connect()
    assert bt.value().endswith(b"u" * 30000)
    assert front.gate.reasons == 0 and ct.producerState == "producing"


def test_pipelined_backlog_answered_locally_after_an_async_route_reads_on():
    """A backlog over the limit held while routing, then answered without a
    backend: once it is used up the client is read again (not left paused
    until the idle timeout)."""
    from cocalcproxy.routing.types import Reject

    pending = []
    h = RoutedHarness(lambda req: pending.append(defer.Deferred()) or pending[-1], max_header_bytes=1024)
    front, ct = h.client()
    front.dataReceived(GET)
    front.dataReceived(GET * 30)
    assert front.gate.reasons & PIPELINE
    while pending:
        pending.pop(0).callback(Reject(403, "No."))
    assert ct.value().count(b"HTTP/1.1 403 ") == 31
    assert front.gate.reasons == 0 and ct.producerState == "producing"
