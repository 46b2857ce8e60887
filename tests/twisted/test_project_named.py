"""``NamedRoutes`` on a fake process reactor: from a ``Named`` route to the
``Forward`` / ``Reject`` / ``Handoff`` the front carries out (no processes, no
sockets).  The servers are real ``SupervisedServer``s driven by
``tests.support.fake_processes``, so starting, failing and the stop-while-starting
race are the state machine's own."""

from __future__ import annotations

import signal

import pytest
from twisted.internet import defer

from cocalcproxy.http1 import parse_request_head
from cocalcproxy.roles.project.named import NamedRoutes
from cocalcproxy.roles.project.rewrite import RewriteBuffer
from cocalcproxy.routing.addresses import Address
from cocalcproxy.routing.types import Forward, Handoff, Named, Reject
from cocalcproxy.supervise.process import RUNNING, STARTING, SupervisedServer
from cocalcproxy.supervise.readiness import NotReady
from cocalcproxy.supervise.spec import parse_server
from tests.support.fake_processes import FakeProber, ProcessReactor, end
from tests.support.results import recorded, success_result_of

UPGRADE = (b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


class Supervisor:
    """What ``NamedRoutes`` uses of the real one: ``servers`` by name."""

    def __init__(self):
        self.servers = {}


class Bridges:
    """A ``BridgeFactory`` stand-in: records ``starter(address, activity)``."""

    def __init__(self):
        self.starters = []

    def starter(self, address, activity=None):
        start = object()
        self.starters.append((address, activity, start))
        return start


class World:
    def __init__(self, rewrite_max_bytes: int = 1000):
        self.reactor = ProcessReactor()
        self.prober = FakeProber()
        self.supervisor = Supervisor()
        self.bridges = Bridges()
        self.activity_hook = lambda: None
        self.routes = NamedRoutes(self.supervisor, self.bridges, rewrite_max_bytes, self.activity_hook)
        self.signals = []

    def add(self, name: str, **options) -> SupervisedServer:
        options.setdefault("command", ["app", "--port", "{port}"])
        spec = parse_server(name, options)[0]
        server = SupervisedServer(spec, self.reactor, self.prober, "/base/", kill_grace=1.0)
        server.killpg = lambda pid, sig: self.signals.append((pid, sig))
        self.supervisor.servers[name] = server
        return server

    def running(self, name: str, **options) -> SupervisedServer:
        server = self.add(name, **options)
        server.ensure_started()
        self.prober.calls[-1][1].callback("HTTP 200")
        assert server.state == RUNNING
        return server

    def route(self, name: str, rest: bytes = b"/", head: bytes = b"", method: bytes = b"GET"):
        full = b"/" + name.encode() + rest
        req = parse_request_head(method + b" " + full + b" HTTP/1.1\r\nHost: proxy.test\r\n" + head)
        return self.routes.route(Named(name, rest, full, b"/" + name.encode()), req)


def port_of(server) -> int:
    return server.target.port


# ------------------------------------------------------------------ running


def test_unknown_name_is_404():
    w = World()
    assert w.route("nosuch") == Reject(404, "No such server.")


def test_running_server_is_forwarded_at_once_without_the_prefix():
    w = World()
    server = w.running("app")
    fwd = w.route("app", b"/a/b?q=1")
    assert fwd == Forward("localhost", port_of(server), b"/a/b?q=1", b"/app", "named")


def test_absolute_url_keeps_the_full_target_and_has_no_context_path():
    w = World()
    server = w.running("abs", absolute_url=True)
    fwd = w.route("abs", b"/deep/x?y")
    assert (fwd.host, fwd.port, fwd.target, fwd.context_path) == ("localhost", port_of(server), b"/abs/deep/x?y", None)


def test_mappath_dict_maps_the_path_and_keeps_the_query():
    w = World()
    w.running("m", mappath={"/": "/lab", "/old": "/new"})
    assert w.route("m", b"/?x=1").target == b"/lab?x=1"
    assert w.route("m", b"/old?y").target == b"/new?y"
    assert w.route("m", b"/other").target == b"/other"  # not in the dict: unchanged


def test_mappath_callable_gets_the_path():
    w = World()
    seen = []

    def mappath(path):
        seen.append(path)
        return "/m" + path

    w.running("c", mappath=mappath)
    assert w.route("c", b"/x/y?q").target == b"/m/x/y?q"
    assert seen == ["/x/y"]  # the path only, no query


def test_mappath_callable_returning_nonsense_leaves_the_path():
    w = World()
    w.running("c", mappath=lambda path: "no-leading-slash")
    assert w.route("c", b"/x").target == b"/x"


def test_request_headers_override_is_set_on_the_forward_templated():
    w = World()
    server = w.running("h", request_headers_override={"X-Port": "p{port}", "User-Agent": "overridden"})
    fwd = w.route("h")
    assert fwd.set_headers == ((b"X-Port", b"p%d" % port_of(server)), (b"User-Agent", b"overridden"))


def test_unix_socket_server_is_forwarded_to_the_socket_path(tmp_path):
    w = World()
    path = str(tmp_path / "app.sock")
    w.running("sock", unix_socket=path)
    fwd = w.route("sock", b"/hi")
    assert (fwd.host, fwd.port, fwd.target) == (path, 0, b"/hi")  # a host that is a path: unix socket


def test_server_without_command_is_forwarded_to_its_port():
    w = World()
    w.add("ext", command=None, port=9999)
    fwd = w.route("ext", b"/x")
    assert (fwd.host, fwd.port, fwd.target) == ("localhost", 9999, b"/x")
    assert w.reactor.spawned == []


# ------------------------------------------------------------------ starting


def test_starting_server_gives_a_deferred_forward():
    w = World()
    server = w.add("app")
    d = w.route("app", b"/x")
    assert isinstance(d, defer.Deferred) and recorded(d) == [] and server.state == STARTING
    w.prober.calls[0][1].callback("HTTP 200")
    fwd = success_result_of(d)
    assert fwd == Forward("localhost", port_of(server), b"/x", b"/app", "named")


def test_concurrent_requests_wait_on_one_start():
    w = World()
    server = w.add("app")
    ds = [w.route("app", b"/%d" % i) for i in range(3)]
    assert len(w.reactor.spawned) == 1
    w.prober.calls[0][1].callback("HTTP 200")
    fwds = [success_result_of(d) for d in ds]
    assert [f.target for f in fwds] == [b"/0", b"/1", b"/2"]
    assert {f.port for f in fwds} == {port_of(server)}
    assert isinstance(w.route("app"), Forward)  # running now: no Deferred any more


def test_not_ready_is_a_504_reject_naming_the_server():
    w = World()
    w.add("slow", timeout=3)
    d = w.route("slow")
    w.prober.calls[0][1].errback(NotReady())
    assert success_result_of(d) == Reject(504, "The server 'slow' did not become ready within 3 seconds.")


def test_exit_while_starting_is_a_502_reject():
    w = World()
    w.add("crash")
    d = w.route("crash")
    end(w.reactor, code=1)
    assert success_result_of(d) == Reject(502, "The server 'crash' exited while starting.")


def test_a_stopping_proxy_answers_503():
    w = World()
    server = w.add("app")
    server.closed = True
    assert success_result_of(w.route("app")).status == 503


def test_an_unexpected_start_failure_is_a_plain_502():
    w = World()
    server = w.add("app")
    server.ensure_started = lambda: defer.fail(RuntimeError("internal detail"))
    reject = success_result_of(w.route("app"))
    assert reject == Reject(502, "The server could not be started.")


def test_server_stopped_while_starting_is_restarted_for_its_waiting_request():
    """A DELETE (or a reload) stops the server while a request waits for its start:
    the request is answered by a fresh start, never with the old child's port."""
    w = World()
    server = w.add("app")
    d = w.route("app", b"/wait")
    got = recorded(d)
    first_pid = server.pid
    stopped = recorded(server.stop())
    assert w.signals == [(first_pid, signal.SIGTERM)]
    end(w.reactor, index=0, sig=signal.SIGTERM)  # its readiness wait now fails with ProcessGone
    assert stopped == [None] and got == []  # not answered with a 502: started again instead
    assert len(w.reactor.spawned) == 2 and server.state == STARTING
    w.prober.calls[1][1].callback("HTTP 200")
    fwd = success_result_of(d)
    new_port = int(w.reactor.spawned[1][2][6])
    assert (fwd.host, fwd.port, fwd.target) == ("localhost", new_port, b"/wait")
    assert server.pid == w.reactor.spawned[1][4].pid != first_pid


# ------------------------------------------------------------------ activity


def test_a_forwarded_request_counts_as_activity_by_default():
    w = World()
    server = w.running("app")
    assert server.last_activity is None
    assert w.route("app").activity is True
    assert server.last_activity is not None  # the management API's last_activity


def test_update_last_activity_false():
    w = World()
    server = w.running("quiet", update_last_activity=False)
    assert w.route("quiet").activity is False and server.last_activity is None


def test_exclude_last_activity_patterns_match_the_request_path_without_the_query():
    """As in jupyter-server-proxy, the patterns see the whole request path (prefix
    included) and are anchored at its start (``re.match``)."""
    w = World()
    server = w.running("picky", exclude_last_activity_patterns=[r".*/metrics$", r"/picky/api/status"])
    assert w.route("picky", b"/metrics?x").activity is False
    assert w.route("picky", b"/api/status/1").activity is False
    assert server.last_activity is None
    assert w.route("picky", b"/metrics/not").activity is True  # $: not at the end
    assert w.route("picky", b"/x/picky/api/status").activity is True  # anchored at the start


def test_update_last_activity_callable_gets_what_it_declares():
    w = World()
    calls = []

    def counts(method, path):
        calls.append((method, path))
        return method == "GET"

    w.running("cb", update_last_activity=counts)
    assert w.route("cb", b"/a?q").activity is True
    assert w.route("cb", b"/a", method=b"HEAD").activity is False
    assert calls == [("GET", "/cb/a"), ("HEAD", "/cb/a")]  # the request's path, no query


def test_an_update_last_activity_callable_that_raises_counts_as_activity():
    w = World()

    def broken(request):
        raise ValueError("bug")

    w.running("cb", update_last_activity=broken)
    assert w.route("cb").activity is True


# ------------------------------------------------------------------ rewrite


def test_rewrite_response_gives_a_buffer_factory_with_the_proxied_path():
    w = World(rewrite_max_bytes=1234)
    seen = []

    def rewrite(response, path, host, port):
        seen.append((path, host, port))

    server = w.running("rw", rewrite_response=rewrite)
    fwd = w.route("rw", b"/page?q=1")
    buf = fwd.rewrite()
    assert isinstance(buf, RewriteBuffer) and buf.max_bytes == 1234
    assert fwd.rewrite() is not buf  # a fresh buffer per response
    buf.start(b"HTTP/1.1 200 OK\r\n\r\n")
    buf.finish()
    assert seen == [("/page", "localhost", port_of(server))]  # the proxied path, without the query


def test_no_rewrite_without_rewrite_response():
    w = World()
    w.running("plain")
    assert w.route("plain").rewrite is None


# ------------------------------------------------------------------ raw sockets


def test_raw_socket_server_refuses_plain_http_with_405():
    w = World()
    w.running("raw", raw_socket_proxy=True)
    reject = w.route("raw")
    assert reject == Reject(405, "The server 'raw' is a raw socket server: only WebSocket connections are accepted.")
    assert w.bridges.starters == []


def test_raw_socket_upgrade_is_handed_to_the_bridge():
    w = World()
    server = w.running("raw", raw_socket_proxy=True)
    handoff = w.route("raw", head=UPGRADE)
    [(address, activity, start)] = w.bridges.starters
    assert isinstance(handoff, Handoff) and handoff.start is start
    assert address == Address("localhost", port_of(server))
    assert activity is w.activity_hook  # frames through the bridge touch --activity-file
    assert server.last_activity is not None
    again = w.route("raw", head=UPGRADE)
    assert again.start is start and len(w.bridges.starters) == 1  # one bridge starter per target


def test_raw_socket_upgrade_while_starting_waits_for_the_start():
    w = World()
    server = w.add("raw", raw_socket_proxy=True)
    d = w.route("raw", head=UPGRADE)
    assert recorded(d) == [] and w.bridges.starters == []
    w.prober.calls[0][1].callback("TCP")
    handoff = success_result_of(d)
    [(address, _, start)] = w.bridges.starters
    assert handoff.start is start and address == Address("localhost", port_of(server))


def test_raw_socket_restart_gets_a_new_bridge_starter():
    w = World()
    server = w.running("raw", raw_socket_proxy=True)
    first = w.route("raw", head=UPGRADE).start
    server.stop()
    end(w.reactor, sig=signal.SIGTERM)
    d = w.route("raw", head=UPGRADE)
    w.prober.calls[-1][1].callback("TCP")
    second = success_result_of(d).start
    assert second is not first and len(w.bridges.starters) == 2
    assert w.bridges.starters[1][0] == Address("localhost", port_of(server))


def test_raw_socket_over_a_unix_socket(tmp_path):
    w = World()
    path = str(tmp_path / "raw.sock")
    w.running("raw", raw_socket_proxy=True, unix_socket=path)
    w.route("raw", head=UPGRADE)
    assert w.bridges.starters[0][0] == Address.unix(path)


def test_raw_socket_that_does_not_count_as_activity_gets_no_hook():
    w = World()
    server = w.running("raw", raw_socket_proxy=True, update_last_activity=False)
    w.route("raw", head=UPGRADE)
    assert w.bridges.starters[0][1] is None and server.last_activity is None


def test_raw_socket_start_failure_is_a_reject():
    w = World()
    w.add("raw", raw_socket_proxy=True)
    d = w.route("raw", head=UPGRADE)
    end(w.reactor, code=3)
    assert success_result_of(d).status == 502 and w.bridges.starters == []


@pytest.mark.parametrize("status", [502, 504])
def test_start_error_status_is_the_rejects_status(status):
    w = World()
    w.add("app")
    d = w.route("app")
    if status == 504:
        w.prober.calls[0][1].errback(NotReady())
    else:
        end(w.reactor, code=1)
    assert success_result_of(d).status == status
