"""SPEC §2/§3 limits and timeouts end to end: 414/431 (and their order), header,
idle and connect timeouts (one real-time smoke test each; the fine cases are
on a fake clock in ``tests/twisted/test_front.py``), ``--max-connections``,
and ``healthz``.

One proxy with small limits and short timeouts serves most tests; the 8 KiB
and 64 KiB boundaries use the shared default proxy; ``--max-connections``
gets its own so no other test's connections count against it.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.conftest import PROJECT_ID
from tests.support.leaks import Baseline
from tests.support.procs import ProxyProcess
from tests.support.waiting import wait_until
from tests.support.wire import Wire, exchange, http_get, parse_first_response
from tests.support.wire import connect as wire_connect

B = f"/{PROJECT_ID}/"
TIMEOUT = 0.5  # --header-timeout, --idle-timeout and --connect-timeout of the small proxy
SMALL_HEAD = 4096


@pytest.fixture(scope="module")
def small():
    p = ProxyProcess("project", [
        "--project-id", PROJECT_ID, "--max-header-bytes", str(SMALL_HEAD), "--header-timeout", str(TIMEOUT),
        "--idle-timeout", str(TIMEOUT), "--connect-timeout", str(TIMEOUT),
    ])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def capped():
    p = ProxyProcess("project", ["--project-id", PROJECT_ID, "--max-connections", "3"])
    yield p
    p.stop()


@pytest.fixture
def no_leaks(small):
    baseline = Baseline.settle(small)
    yield
    baseline.assert_reached(small, what="after the test")


def padded_request(total: int, path: str = f"{B}healthz") -> bytes:
    """A GET whose whole head (final CRLFCRLF included) is exactly ``total`` bytes."""
    bare = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n".encode()
    return bare.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (total - len(bare)))


def request_line_of(length: int) -> bytes:
    """``GET /<pid>/nothing/aaa… HTTP/1.1`` exactly ``length`` bytes long (CRLF not counted)."""
    bare = f"GET {B}nothing/ HTTP/1.1".encode()
    return bare.replace(b"/ HTTP", b"/" + b"a" * (length - len(bare)) + b" HTTP")


def connect(port: int) -> Wire:
    return wire_connect(port, timeout=5)


# ------------------------------------------------------------------ 414 / 431


def test_request_line_over_8k_is_414_even_with_smaller_head_limit(small, no_leaks):
    answer = exchange(small.port, request_line_of(9000) + b"\r\nHost: x\r\n\r\n")
    assert answer.status == 414
    assert answer.closed and answer.header(b"connection") == b"close"


def test_414_is_checked_before_431(small, no_leaks):
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(100))
    answer = exchange(small.port, request_line_of(9000) + b"\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.status == 414


def test_414_without_waiting_for_the_end_of_the_line(small, no_leaks):
    with connect(small.port) as c:
        c.send(request_line_of(9000))  # no CRLF: the line is not finished
        raw, closed = c.read_until_closed(3)
    answer = parse_first_response(raw, closed)
    assert answer.status == 414 and answer.closed


def test_request_line_boundary_8192(project_proxy):
    ok = exchange(project_proxy.port, request_line_of(8192) + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.status == 404  # long but allowed: routed (nothing there)
    too_long = exchange(project_proxy.port, request_line_of(8193) + b"\r\nHost: x\r\n\r\n")
    assert too_long.status == 414


def test_request_line_of_8192_split_between_cr_and_lf_is_not_414(project_proxy):
    with connect(project_proxy.port) as c:
        c.send(request_line_of(8192) + b"\r")
        assert wait_until(lambda: project_proxy.tcp_connections() >= 1, 2)
        time.sleep(0.1)  # let the proxy read the lone CR on its own
        c.send(b"\nHost: x\r\nConnection: close\r\n\r\n")
        raw, closed = c.read_until_closed(5)
    assert parse_first_response(raw, closed).status == 404


def test_request_line_under_8k_but_over_head_limit_is_431(small, no_leaks):
    answer = exchange(small.port, request_line_of(5000) + b"\r\nHost: x\r\n\r\n")
    assert answer.status == 431 and answer.closed


def test_head_boundary_at_max_header_bytes(small, no_leaks):
    at_limit = padded_request(SMALL_HEAD)
    assert len(at_limit) == SMALL_HEAD
    with connect(small.port) as c:
        c.send(at_limit)
        answer = parse_first_response(*c.read_framed(5))
        assert (answer.status, answer.body) == (200, b"ok\n")
    over = exchange(small.port, padded_request(SMALL_HEAD + 1))
    assert over.status == 431
    assert over.status_line == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert over.closed and over.header(b"connection") == b"close"
    assert b"Traceback" not in over.raw


def test_431_without_waiting_for_the_end_of_the_head(small, no_leaks):
    with connect(small.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-H: 1234567890\r\n" * 300)  # no empty line
        raw, closed = c.read_until_closed(3)
    answer = parse_first_response(raw, closed)
    assert answer.status == 431 and answer.closed


def test_default_head_limit_is_64k(project_proxy):
    with connect(project_proxy.port) as c:
        c.send(padded_request(65536))
        assert parse_first_response(*c.read_framed(5)).status == 200
    assert exchange(project_proxy.port, padded_request(65537)).status == 431


# ------------------------------------------------------------------ header and idle timeouts
# One real-time smoke test per timeout, on the small proxy's 0.5 s; the finer
# cases (a silent client, a dripping head, the next head on a keep-alive
# connection, reuse within the idle timeout, a slow body or backend being no
# timeout) run on a fake clock in tests/twisted/test_front.py.


def test_half_a_head_gets_408_and_close(small, no_leaks):
    with connect(small.port) as c:
        started = time.monotonic()
        c.send(b"GET " + B.encode() + b"healthz HTTP/1.1\r\nHost: x\r\n")
        raw, closed = c.read_until_closed(5)
        elapsed = time.monotonic() - started
    answer = parse_first_response(raw, closed)
    assert answer.status == 408
    assert answer.status_line == b"HTTP/1.1 408 Request Timeout"
    assert answer.closed and answer.header(b"connection") == b"close"
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 2


def test_idle_keep_alive_connection_closed_after_a_response(small, no_leaks):
    with connect(small.port) as c:
        c.send(http_get(f"{B}healthz", close=False))
        answer = parse_first_response(*c.read_framed(5))
        assert answer.status == 200 and answer.header(b"connection") is None
        started = time.monotonic()
        raw, closed = c.read_until_closed(5)
        elapsed = time.monotonic() - started
    assert closed and raw == b""  # closed quietly: no 408 after a served request
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 2


def test_partial_pipelined_head_after_a_response_gets_the_header_timeout(small, no_leaks):
    """Half a head left behind a served request does not escape every timeout:
    the header timeout is armed again when the response ends (slowloris)."""
    with connect(small.port) as c:
        c.send(http_get(f"{B}healthz", close=False) + b"GET " + B.encode() + b"healthz HT")
        answer = parse_first_response(*c.read_framed(5))
        assert (answer.status, answer.body) == (200, b"ok\n")
        started = time.monotonic()
        raw, closed = c.read_until_closed(5)
        elapsed = time.monotonic() - started
    late = parse_first_response(raw, closed)
    assert late.status == 408 and late.closed
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 2


# ------------------------------------------------------------------ connect timeout


def test_connect_timeout_is_504(small, no_leaks):
    """A listener whose accept queue is full drops SYNs: the connect hangs (Linux)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        with socket.socket() as probe:  # precondition: a connect now times out
            probe.settimeout(0.3)
            with pytest.raises(socket.timeout):
                probe.connect(("127.0.0.1", port))
        started = time.monotonic()
        answer = exchange(small.port, http_get(f"{B}server/{port}/"))
        elapsed = time.monotonic() - started
        assert answer.status == 504
        assert answer.status_line == b"HTTP/1.1 504 Gateway Timeout"
        assert b"The backend did not accept the connection in time." in answer.body
        assert answer.closed
        assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 2
    finally:
        for s in fillers:
            s.close()
        listener.close()


# ------------------------------------------------------------------ max connections


def healthz_on(c: Wire) -> int:
    c.send(http_get(f"{B}healthz", close=False))
    return parse_first_response(*c.read_framed(5)).status


def refused_at_accept(port: int) -> bool:
    """True if the proxy closes a new connection without answering a request on it."""
    with connect(port) as c:
        try:
            c.send(http_get(f"{B}healthz", close=False))
        except (BrokenPipeError, ConnectionResetError):
            return True
        raw, closed = c.read_until_closed(3)
    return closed and raw == b""


def test_max_connections(capped):
    # the startup probe's connection must be gone before counting
    assert wait_until(lambda: capped.tcp_connections() == 0, 5)
    first = [connect(capped.port) for _ in range(3)]
    try:
        for c in first:
            assert healthz_on(c) == 200
        assert refused_at_accept(capped.port)
        assert refused_at_accept(capped.port)
        for c in first:  # the admitted ones keep working
            assert healthz_on(c) == 200
        first.pop().close()
        # the proxy notices the close asynchronously; then exactly one new connection fits

        def admitted() -> bool:
            c = connect(capped.port)
            try:
                if healthz_on(c) == 200:
                    first.append(c)
                    return True
            except (AssertionError, OSError):
                pass
            c.close()
            return False

        assert wait_until(admitted, 5, 0.05), "no new connection admitted after one closed"
        assert refused_at_accept(capped.port)
    finally:
        for c in first:
            c.close()
    assert wait_until(lambda: capped.tcp_connections() == 0, 5)


# ------------------------------------------------------------------ healthz


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_healthz(small, method):
    with connect(small.port) as c:
        c.send(http_get(f"{B}healthz?probe=1", method=method, close=False))
        raw, _ = c.read_until_closed(0.3) if method == b"HEAD" else c.read_framed(5)
    expected_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
    assert raw.startswith(expected_head)
    assert raw.endswith(b"\r\n\r\n" if method == b"HEAD" else b"\r\n\r\nok\n")
    assert b"X-Forwarded" not in raw


@pytest.mark.parametrize(
    "path, status",
    [(f"{B}healthz/", 404), ("/healthz", 404), (f"{B}healthzx", 404), (f"{B}Healthz", 404),
     (f"{B}server/1/healthz", 502)],  # that one is the backend's healthz: proxied (nothing on port 1)
)
def test_healthz_only_at_its_path(small, path, status):
    answer = exchange(small.port, http_get(path))
    assert answer.status == status
    assert answer.body != b"ok\n"
