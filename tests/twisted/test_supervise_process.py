"""SupervisedServer's state machine on a fake reactor (no real processes):
shared start, readiness outcomes, TERM → KILL timing, restart after exit."""

from __future__ import annotations

import os
import signal

import pytest

from cocalcproxy.supervise.process import RUNNING, STARTING, STOPPED, STOPPING, StartError, SupervisedServer
from cocalcproxy.supervise.readiness import NotReady
from cocalcproxy.supervise.spec import parse_server
from tests.support.fake_processes import FakeProber, ProcessReactor, end
from tests.support.results import recorded, success_result_of


@pytest.fixture
def setup():
    reactor = ProcessReactor()
    prober = FakeProber()
    signals = []
    spec = parse_server("app", {"command": ["app", "--port", "{port}"], "timeout": 3,
                                "environment": {"APP_BASE": "{base_url}"}})[0]
    server = SupervisedServer(spec, reactor, prober, "/base/", kill_grace=2.0)
    server.killpg = lambda pid, sig: signals.append((pid, sig))
    return reactor, prober, server, signals


def test_concurrent_requests_share_one_start(setup):
    reactor, prober, server, _ = setup
    ds = [server.ensure_started() for _ in range(5)]
    assert len(reactor.spawned) == 1 and len(prober.calls) == 1
    assert server.state == STARTING and not any(d.called for d in ds)
    _, executable, args, env, proc = reactor.spawned[0]
    assert args[3] == str(os.getpid())  # the setsid shim checks its parent is still us
    assert args[4:6] == ["app", "--port"] and args[6].isdigit()
    assert env["APP_BASE"] == "/base/" and "PATH" in env  # our environment plus the server's
    prober.calls[0][1].callback(None)
    targets = [d.result for d in ds]
    assert server.state == RUNNING and all(t is targets[0] for t in targets)
    assert targets[0].port == int(args[6])
    assert server.ensure_started().result is targets[0]  # no new start while running


def test_not_ready_kills_and_answers_504(setup):
    reactor, prober, server, signals = setup
    d = server.ensure_started()
    failures = []
    d.addErrback(failures.append)
    prober.calls[0][1].errback(NotReady())
    assert failures[0].check(StartError) and failures[0].value.status == 504
    assert "'app'" in failures[0].value.message
    pid = reactor.spawned[0][4].pid
    assert signals == [(pid, signal.SIGTERM)] and server.state == STOPPING
    reactor.advance(2.0)
    assert signals[-1] == (pid, signal.SIGKILL)
    end(reactor, sig=9)
    assert server.state == STOPPED


def test_exit_during_start_is_502_at_once(setup):
    reactor, prober, server, _ = setup
    d = server.ensure_started()
    failures = []
    d.addErrback(failures.append)
    end(reactor, code=1)
    assert failures and failures[0].value.status == 502
    assert server.state == STOPPED
    server.ensure_started()  # the next request starts it again
    assert len(reactor.spawned) == 2


def test_no_free_port_is_502_and_the_next_request_tries_again(setup, monkeypatch):
    from cocalcproxy.supervise import process

    reactor, prober, server, _ = setup

    def exhausted():
        raise OSError("no port is free on both 127.0.0.1 and ::1")

    monkeypatch.setattr(process, "free_port", exhausted)
    failures = []
    server.ensure_started().addErrback(failures.append)
    assert failures[0].value.status == 502 and "no free port" in failures[0].value.message
    assert reactor.spawned == [] and server.state == STOPPED
    monkeypatch.undo()
    server.ensure_started()
    assert len(reactor.spawned) == 1


def test_port_already_in_use_is_502_and_nothing_is_spawned(setup):
    reactor, prober, server, _ = setup
    prober.hold_port_checks = True
    failures = []
    server.ensure_started().addErrback(failures.append)
    assert server.state == STARTING and not reactor.spawned  # checking the port first
    port, d = prober.port_checks[0]
    d.callback(True)
    assert failures[0].value.status == 502
    assert f"port {port} is already in use by another program" in failures[0].value.message
    assert reactor.spawned == [] and server.state == STOPPED and prober.calls == []
    server.ensure_started()  # the next request checks again
    prober.port_checks[1][1].callback(False)
    assert len(reactor.spawned) == 1 and str(prober.port_checks[1][0]) in reactor.spawned[0][2]


def test_proxy_stopping_during_the_port_check_starts_nothing(setup):
    reactor, prober, server, _ = setup
    prober.hold_port_checks = True
    failures = []
    server.ensure_started().addErrback(failures.append)
    server.closed = True
    prober.port_checks[0][1].callback(False)
    assert failures[0].value.status == 503 and reactor.spawned == [] and server.state == STOPPED


def test_stop_during_start_restarts_for_the_waiters_and_ignores_the_old_readiness(setup):
    reactor, prober, server, signals = setup
    results, failures = [], []
    server.ensure_started().addCallbacks(results.append, failures.append)
    server.stop()  # DELETE, or a reload that removes it, while it starts
    end(reactor, index=0, sig=signal.SIGTERM)  # the old child's readiness now fails with ProcessGone
    assert failures == [] and len(reactor.spawned) == 2 and server.state == STARTING
    prober.calls[1][1].callback("HTTP 200")
    assert results and results[0] is server.target and server.state == RUNNING
    assert len(reactor.spawned) == 2


def test_clean_exit_after_running_restarts_on_next_request(setup):
    reactor, prober, server, _ = setup
    server.ensure_started()
    prober.calls[0][1].callback(None)
    end(reactor, code=0)
    assert server.state == STOPPED and server.pid is None
    d = server.ensure_started()
    got = recorded(d)
    assert len(reactor.spawned) == 2 and got == []
    prober.calls[1][1].callback(None)
    assert server.state == RUNNING
    target = success_result_of(d)
    assert target is server.target and target.port == int(reactor.spawned[1][2][6])  # the new child's port


def test_stop_terms_the_group_and_waits(setup):
    reactor, prober, server, signals = setup
    server.ensure_started()
    prober.calls[0][1].callback(None)
    pid = server.pid
    stopped = server.stop()
    got = recorded(stopped)
    assert signals == [(pid, signal.SIGTERM)] and got == []
    end(reactor, sig=15)
    assert got == [None] and server.state == STOPPED and server.pid is None
    # the group's leftovers (children the server did not reap) get KILL once it has ended
    assert signals == [(pid, signal.SIGTERM), (pid, signal.SIGKILL)]
    assert reactor.getDelayedCalls() == []  # the grace-period KILL timer is cancelled
    reactor.advance(10)
    assert len(signals) == 2


def running(reactor, prober, server):
    server.ensure_started()
    prober.calls[-1][1].callback(None)
    assert server.state == RUNNING
    return server.pid


def test_kill_comes_exactly_after_the_grace_period(setup):
    reactor, prober, server, signals = setup
    pid = running(reactor, prober, server)
    got = recorded(server.stop())
    assert signals == [(pid, signal.SIGTERM)]
    reactor.advance(1.99)  # kill_grace is 2.0
    assert signals == [(pid, signal.SIGTERM)] and server.state == STOPPING
    reactor.advance(0.01)
    assert signals == [(pid, signal.SIGTERM), (pid, signal.SIGKILL)]
    assert got == []  # stopped only when it has ended
    end(reactor, sig=signal.SIGKILL)
    assert got == [None] and server.state == STOPPED
    assert signals[2:] == [(pid, signal.SIGKILL)]  # the group's leftovers
    reactor.advance(100)
    assert len(signals) == 3 and reactor.getDelayedCalls() == []


def test_kill_grace_is_the_servers_own(setup):
    reactor, prober, _, _ = setup
    spec = parse_server("quick", {"command": ["app", "{port}"]})[0]
    server = SupervisedServer(spec, reactor, prober, "/", kill_grace=0.5)
    signals = []
    server.killpg = lambda pid, sig: signals.append(sig)
    running(reactor, prober, server)
    server.stop()
    reactor.advance(0.49)
    assert signals == [signal.SIGTERM]
    reactor.advance(0.01)
    assert signals == [signal.SIGTERM, signal.SIGKILL]


def test_a_second_stop_while_stopping_sends_nothing_more_and_both_fire(setup):
    reactor, prober, server, signals = setup
    pid = running(reactor, prober, server)
    first = recorded(server.stop())
    reactor.advance(1)
    second = recorded(server.stop())
    assert signals == [(pid, signal.SIGTERM)]
    assert len(reactor.getDelayedCalls()) == 1  # one KILL timer, still at the first stop's deadline
    reactor.advance(1)
    assert signals == [(pid, signal.SIGTERM), (pid, signal.SIGKILL)]
    end(reactor, sig=signal.SIGKILL)
    assert first == [None] and second == [None]


def test_stopping_a_stopped_server_signals_nothing(setup):
    reactor, prober, server, signals = setup
    assert success_result_of(server.stop()) is None
    assert signals == [] and reactor.getDelayedCalls() == [] and server.state == STOPPED


def test_signals_go_to_the_child_itself_before_it_has_its_own_group(setup):
    """Just after spawn the shim may not have called setsid yet: killpg finds no
    group, so the child gets the signal directly."""
    reactor, prober, server, _ = setup
    running(reactor, prober, server)
    proc = reactor.spawned[0][4]

    def no_group(pid, sig):
        raise ProcessLookupError(pid)

    server.killpg = no_group
    server.stop()
    assert proc.signals == [signal.SIGTERM]
    reactor.advance(2.0)
    assert proc.signals == [signal.SIGTERM, signal.SIGKILL]
    end(reactor, sig=signal.SIGKILL)
    assert server.state == STOPPED


def test_request_while_stopping_starts_afresh(setup):
    reactor, prober, server, _ = setup
    server.ensure_started()
    prober.calls[0][1].callback(None)
    server.stop()
    d = server.ensure_started()
    got = recorded(d)
    assert len(reactor.spawned) == 1
    end(reactor, sig=15)
    assert len(reactor.spawned) == 2 and got == []  # waits for the new start, not the old child
    prober.calls[1][1].callback(None)
    target = success_result_of(d)
    assert target is server.target and server.state == RUNNING
    assert target.port == int(reactor.spawned[1][2][6])


def test_closed_server_refuses_to_start(setup):
    _, _, server, _ = setup
    server.closed = True
    failures = []
    server.ensure_started().addErrback(failures.append)
    assert failures[0].value.status == 503


def test_state_counts_for_the_gauge():
    from cocalcproxy.supervise.supervisor import Supervisor

    reactor = ProcessReactor()
    specs = {n: parse_server(n, {"command": ["x", "{port}"]})[0] for n in ("a", "b", "c")}
    specs["ext"] = parse_server("ext", {"port": 9})[0]
    sup = Supervisor(specs, reactor, "/")
    prober = FakeProber()
    for server in sup.servers.values():
        server.prober = prober
        server.killpg = lambda pid, sig: None
    assert sup.state_counts() == {"starting": 0, "running": 0, "failed": 0}
    sup.servers["a"].ensure_started()
    sup.servers["b"].ensure_started().addErrback(lambda f: None)
    sup.servers["c"].ensure_started()
    prober.calls[0][1].callback(None)
    end(reactor, index=1, code=2)
    assert sup.state_counts() == {"starting": 1, "running": 1, "failed": 1}
