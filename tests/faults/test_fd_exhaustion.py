"""Descriptor exhaustion: more connections than a role may hold.

Two limits: ``--max-connections 20`` (the proxy's own), and a process started
under ``ulimit -n 64`` (the kernel's: accept() fails with EMFILE).  In both,
more connections are opened than fit: the admitted ones keep working, the
excess ones are refused cleanly — closed at accept, no byte sent, nothing
left waiting in the backlog — the proxy does not spin (CPU time sampled from
``/proc/<pid>/stat`` over ~2 s at the limit, while new connections keep
arriving), a request that needs one more descriptor at the fd limit gets an
answer (not a hang), and after the connections are released a new request
gets 200 and the descriptor count is back to its baseline.
"""

from __future__ import annotations

import socket
import time


from tests.faults.helpers import LimitedProxy, unexpected_tracebacks
from tests.support.app_backend import AppBackend
from tests.support.procs import ProxyProcess, cpu_seconds
from tests.support.waiting import wait_until
from tests.support.wire import Wire, http_get, parse_first_response

CPU_PER_SECOND = 0.5  # the brief: well under this when idle at the limit
SAMPLE = 2.0


def open_many(port: int, n: int) -> list[Wire]:
    return [Wire(socket.create_connection(("127.0.0.1", port), timeout=5), 5) for _ in range(n)]


def healthz(wire: Wire) -> str:
    """"ok" (200 on this connection), "refused" (closed without a byte) or what else came."""
    try:
        wire.send(http_get("/healthz", close=False))
        raw, closed = wire.read_framed(3)
    except (BrokenPipeError, ConnectionResetError):
        return "refused"
    except AssertionError as e:  # no complete answer within 3 s
        return f"hung: {e}"
    if raw == b"" and closed:
        return "refused"
    if raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"ok\n"):
        return "ok"
    return f"other: {raw[:100]!r}"


def proxied(wire: Wire, port: int, timeout: float = 10.0) -> int:
    wire.send(http_get(f"/server/{port}/hello", close=False))
    raw, closed = wire.read_framed(timeout)
    return parse_first_response(raw, closed).status


def refused_while_sampling(port: int, pid: int) -> tuple[float, list[str]]:
    """CPU seconds per second of ``pid`` over ``SAMPLE`` s while a new connection
    arrives every 0.1 s; what each of those got."""
    got = []
    before = cpu_seconds(pid)
    started = time.monotonic()
    while time.monotonic() - started < SAMPLE:
        with Wire(socket.create_connection(("127.0.0.1", port), timeout=5), 5) as w:
            got.append(healthz(w))
        time.sleep(0.1)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started), got


def idle_cpu(pid: int) -> float:
    before = cpu_seconds(pid)
    time.sleep(SAMPLE)
    return (cpu_seconds(pid) - before) / SAMPLE


def settle_fds(proxy, baseline: int, timeout: float = 10.0) -> bool:
    return wait_until(lambda: proxy.fd_count() <= baseline, timeout)


def test_max_connections_refuses_the_excess_at_accept_without_spinning(app):
    proxy = ProxyProcess("project", ["--no-entry-points", "--max-connections", "20"])
    try:
        with Wire(socket.create_connection(("127.0.0.1", proxy.port), timeout=5), 5) as w:
            assert proxied(w, app.port) == 200  # the pool now holds one backend connection
        assert wait_until(lambda: proxy.tcp_connections() == 1, 5)
        baseline = proxy.fd_count()
        conns = open_many(proxy.port, 30)
        try:
            results = [healthz(w) for w in conns]
            assert results.count("ok") == 20 and results.count("refused") == 10, results
            admitted = [w for w, r in zip(conns, results) if r == "ok"]
            cpu, late = refused_while_sampling(proxy.port, proxy.pid)
            assert set(late) == {"refused"}, late
            assert cpu < CPU_PER_SECOND, f"{cpu:.2f} s of CPU per second at the connection limit"
            assert idle_cpu(proxy.pid) < 0.05
            statuses = [proxied(w, app.port) for w in admitted]  # the admitted ones still work, to a backend too
            assert statuses == [200] * 20
        finally:
            for w in conns:
                w.close()
        assert wait_until(lambda: proxy.tcp_connections() <= 20, 5)
        with Wire(socket.create_connection(("127.0.0.1", proxy.port), timeout=5), 5) as w:
            assert healthz(w) == "ok" and proxied(w, app.port) == 200
        # the 20 requests above may have left up to 20 idle pooled backend connections (SPEC §3):
        # beyond those, nothing
        assert wait_until(lambda: proxy.fd_count() - proxy.tcp_connections() <= baseline - 1, 10), \
            (proxy.fd_count(), proxy.tcp_connections(), baseline)
        assert not unexpected_tracebacks(proxy.log_text())
    finally:
        proxy.stop()


def test_fd_limit_refuses_the_excess_at_accept_without_spinning(app):
    other = AppBackend()  # a backend the proxy has no pooled connection to
    proxy = LimitedProxy("project", ["--no-entry-points"], nofile=64)
    try:
        assert proxy.nofile_limit() == 64
        with Wire(socket.create_connection(("127.0.0.1", proxy.port), timeout=5), 5) as w:
            assert proxied(w, app.port) == 200
        assert wait_until(lambda: proxy.tcp_connections() == 1, 5)
        baseline = proxy.fd_count()
        conns = open_many(proxy.port, 100)
        try:
            results = [healthz(w) for w in conns]
            ok, refused = results.count("ok"), results.count("refused")
            assert ok + refused == 100, [r for r in results if r not in ("ok", "refused")][:5]
            assert ok >= 64 - baseline - 5 and refused >= 100 - 64, (ok, refused)
            assert proxy.fd_count() >= 62, "the test did not reach the fd limit"
            admitted = [w for w, r in zip(conns, results) if r == "ok"]
            cpu, late = refused_while_sampling(proxy.port, proxy.pid)
            assert set(late) == {"refused"}, late
            assert cpu < CPU_PER_SECOND, f"{cpu:.2f} s of CPU per second at the fd limit"
            assert idle_cpu(proxy.pid) < 0.05
            # one more descriptor is needed (a new backend connection) and none is free: an answer, not a hang
            status = proxied(admitted[0], other.port)
            assert status in (502, 503), status
            assert proxied(admitted[1], app.port) == 200  # the pooled backend connection still serves
        finally:
            for w in conns:
                w.close()
        assert settle_fds(proxy, baseline), (proxy.fd_count(), baseline)
        with Wire(socket.create_connection(("127.0.0.1", proxy.port), timeout=5), 5) as w:
            assert healthz(w) == "ok"
            assert proxied(w, other.port) == 200
            assert proxied(w, app.port) == 200
        assert settle_fds(proxy, baseline + 1), (proxy.fd_count(), baseline)  # + the pooled connection to `other`
        assert "EMFILE" in proxy.log_text()
        assert not unexpected_tracebacks(proxy.log_text()), unexpected_tracebacks(proxy.log_text())[:3]
    finally:
        proxy.stop()
        other.close()
