"""SPEC §3 errors end to end, with raw bytes: the status table, error page
format (HTML / JSON), escaping, ``Connection: close``, refused upgrades, and
that a request the proxy rejects or abandons never reaches a backend whole.

After every test the proxy must hold no more sockets than before it.
"""

from __future__ import annotations

import html
import json
import re
import socket
import time

import pytest

from cocalcproxy import __version__
from tests.conftest import PROJECT_ID
from tests.support.backends import RecordingBackend, ScriptedBackend, read_head
from tests.support.leaks import Baseline
from tests.support.procs import free_port
from tests.support.wire import Answer, connect, exchange, exchange_keepalive, http_get, parse_first_response
from tests.support.watching import RESET, WatchingBackend

B = f"/{PROJECT_ID}/"
WS_HEADERS = [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), (b"Sec-WebSocket-Version", b"13"),
              (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ==")]


@pytest.fixture(autouse=True)
def no_leaks(project_proxy):
    """No socket left behind, and no traceback in the proxy's log, after each test."""
    baseline = Baseline.settle(project_proxy)
    log_start = len(project_proxy.log_text())
    yield
    baseline.assert_reached(project_proxy, what="after the test")
    log = project_proxy.log_text()[log_start:]
    assert "Traceback" not in log and "Unhandled" not in log, log


def html_page(status: int, phrase: str, message: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{status} {phrase}</title></head>\n"
        f"<body><h1>{status} {phrase}</h1>\n<p>{html.escape(message)}</p>\n"
        f"<hr><address>cocalcproxy {__version__}</address></body></html>\n"
    ).encode()


def assert_clean_error(answer: Answer, status: int, closed: bool = True) -> None:
    """An error page made by the proxy: status, HTML, no internals, and closing as it says."""
    assert answer.status == status, answer.raw[:500]
    assert answer.header(b"content-type") == b"text/html; charset=utf-8"
    assert answer.header(b"content-length") == str(len(answer.body)).encode()
    assert answer.body.startswith(b"<!DOCTYPE html>\n") and answer.body.endswith(b"</html>\n")
    assert b"Traceback" not in answer.raw and b'File "' not in answer.raw and b"Error:" not in answer.body
    if closed:
        assert answer.header_all(b"connection") == [b"close"]
        assert answer.closed
    assert answer.raw == answer.raw[: answer.raw.index(b"\r\n\r\n") + 4] + answer.body  # nothing after it


# ------------------------------------------------------------------ page format


def test_html_error_page_exact(project_proxy):
    answer = exchange(project_proxy.port, http_get(f"{B}nothing/"))
    assert_clean_error(answer, 404)
    assert answer.status_line == b"HTTP/1.1 404 Not Found"
    assert answer.body == html_page(404, "Not Found", "No route matches this URL.")
    assert answer.header(b"cache-control") == b"no-store"


@pytest.mark.parametrize(
    "accept, as_json",
    [
        (b"application/json", True),
        (b"application/json, text/plain", True),
        (b"application/json, text/html;q=0.5", True),
        (b"text/html, application/json", False),  # tie: HTML wins
        (b"text/html, application/json;q=0.9", False),
        (b"application/json;q=0", False),
        (b"*/*", False),
        (b"text/html", False),
        (b"", False),
    ],
)
def test_json_error_when_accept_prefers_it(project_proxy, accept, as_json):
    answer = exchange(project_proxy.port, http_get(f"{B}nothing/", headers=[(b"Accept", accept)]))
    assert answer.status == 404
    if as_json:
        assert answer.header(b"content-type") == b"application/json"
        assert answer.body.endswith(b"\n")
        assert json.loads(answer.body) == {"status": 404, "error": "Not Found", "message": "No route matches this URL."}
    else:
        assert answer.body == html_page(404, "Not Found", "No route matches this URL.")


@pytest.mark.parametrize(
    "path, status, message",
    [
        (f"{B}proxy/example.org:80/", 403, "Host 'example.org' is not allowed."),
        (f"{B}server/{{dead}}/", 502, "Nothing is listening on the backend port (connection refused)."),
        (f"{B}server/80%2f80/", 400, "An encoded slash (%2F) is not allowed in the routing part of the URL."),
        (f"{B}server/80/../x", 400, "Paths with . or .. segments are not allowed."),
    ],
)
def test_json_error_shape_for_other_statuses(project_proxy, path, status, message):
    answer = exchange(project_proxy.port, http_get(path.format(dead=free_port()), headers=[(b"Accept", b"application/json")]))
    assert answer.status == status
    assert answer.header(b"content-type") == b"application/json"
    assert json.loads(answer.body) == {"status": status, "error": answer.status_line.split(b" ", 2)[2].decode(),
                                       "message": message}


def test_head_request_error_has_no_body(project_proxy):
    answer = exchange(project_proxy.port, http_get(f"{B}nothing/", method=b"HEAD"), head_only=True)
    assert answer.status == 404
    assert int(answer.header(b"content-length")) > 0
    assert answer.raw.endswith(b"\r\n\r\n")


# ------------------------------------------------------------------ request data in pages is escaped


def test_redirect_page_escapes_the_query(project_proxy):
    query = "?<script>alert(\"x\")</script>&a='b'"
    answer = exchange(project_proxy.port, http_get(f"{B}server/8000{query}"))
    assert answer.status == 301
    assert answer.header(b"location") == f"{B}server/8000/{query}".encode()
    assert b"<script>" not in answer.body
    escaped = html.escape(f"{B}server/8000/{query}").encode()
    assert escaped in answer.body
    assert b"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;a=&#x27;b&#x27;" in answer.body


@pytest.mark.parametrize("host", ["<script>", "a'b", 'a"b', "a&b", "a%3Cb", "[<>]"])
def test_host_with_markup_is_never_in_a_page(project_proxy, host):
    """The 403 page names the host; only host-shaped strings get that far."""
    answer = exchange(project_proxy.port, http_get(f"{B}proxy/{host}:80/"))
    assert_clean_error(answer, 404, closed=False)
    assert host.encode() not in answer.body


# ------------------------------------------------------------------ the status table, raw bytes


def _target(port: int) -> bytes:
    return f"{B}server/{port}/x".encode()


MALFORMED = {
    # request line
    "no version": b"GET {t}\r\nHost: x\r\n\r\n",
    "double space": b"GET  {t} HTTP/1.1\r\nHost: x\r\n\r\n",
    "four parts": b"GET {t} HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    "lowercase version": b"GET {t} http/1.1\r\nHost: x\r\n\r\n",
    "bad method": b"G(T {t} HTTP/1.1\r\nHost: x\r\n\r\n",
    "empty line only": b"\r\n\r\nGET\r\n\r\n",
    # headers
    "obs-fold": b"GET {t} HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    "space before first header": b"GET {t} HTTP/1.1\r\n Host: x\r\n\r\n",
    "obs-fold tab": b"GET {t} HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\n\r\n",
    "NUL in value": b"GET {t} HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "CR in value": b"GET {t} HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "control in value": b"GET {t} HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "space before colon": b"GET {t} HTTP/1.1\r\nHost : x\r\n\r\n",
    "tab before colon": b"GET {t} HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n",
    "no colon": b"GET {t} HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "empty name": b"GET {t} HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
    "bad name char": b"GET {t} HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n",
    "bare LF": b"GET {t} HTTP/1.1\nHost: x\n\n",
    "missing Host (1.1)": b"GET {t} HTTP/1.1\r\nX-A: 1\r\n\r\n",
    "two Host": b"GET {t} HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    # framing
    "CL and TE": b"POST {t} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE and CL": b"POST {t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "differing CLs": b"POST {t} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "differing CL list": b"POST {t} HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "negative CL": b"POST {t} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "hex CL": b"POST {t} HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
    "plus CL": b"POST {t} HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "empty CL": b"POST {t} HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
    "chunked then gzip": b"POST {t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "gzip only": b"POST {t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "identity": b"POST {t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
    "chunked twice": b"POST {t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "chunked twice, two lines": b"POST {t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE in HTTP/1.0": b"POST {t} HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # request-target
    "NUL in target": b"GET {t}\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "control byte in target": b"GET {t}\x01a HTTP/1.1\r\nHost: x\r\n\r\n",
    "tab in target": b"GET {t}\ta HTTP/1.1\r\nHost: x\r\n\r\n",
    "ESC in target": b"GET {t}\x1b HTTP/1.1\r\nHost: x\r\n\r\n",
    "DEL in target": b"GET {t}\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    "DEL in query": b"GET {t}?a=\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request_is_400_and_never_forwarded(project_proxy, backend, case):
    raw = MALFORMED[case].replace(b"{t}", _target(backend.port))
    answer = exchange(project_proxy.port, raw)
    assert_clean_error(answer, 400)
    assert backend.accepted == 0 and backend.requests == []


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate, chunked", b"x-custom, chunked", b"gzip,chunked"])
def test_other_transfer_coding_is_501(project_proxy, backend, coding):
    raw = b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n0\r\n\r\n" % (_target(backend.port), coding)
    answer = exchange(project_proxy.port, raw)
    assert_clean_error(answer, 501)
    assert answer.status_line == b"HTTP/1.1 501 Not Implemented"
    assert backend.accepted == 0


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0", b"HTTP/0.9"])
def test_unsupported_version_is_505(project_proxy, backend, version):
    answer = exchange(project_proxy.port, b"GET %s %s\r\nHost: x\r\n\r\n" % (_target(backend.port), version))
    assert_clean_error(answer, 505)
    assert answer.status_line == b"HTTP/1.1 505 HTTP Version Not Supported"
    assert backend.accepted == 0


def test_http2_preface_is_505(project_proxy):
    answer = exchange(project_proxy.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert_clean_error(answer, 505)


def test_tls_client_hello_on_plain_listener_is_400_at_once(project_proxy):
    started = time.monotonic()
    answer = exchange(project_proxy.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32))
    assert_clean_error(answer, 400)
    assert time.monotonic() - started < 2


def test_same_content_length_twice_is_accepted(project_proxy, backend):
    raw = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello" % (
        _target(backend.port))
    answer = exchange(project_proxy.port, raw)
    assert (answer.status, answer.body) == (200, b"ok")
    assert backend.wait_requests(1)[0].body == b"hello"


# ------------------------------------------------------------------ bad chunk framing mid-body


BAD_CHUNKS = {
    "bad size": b"zz\r\nhello\r\n0\r\n\r\n",
    "negative size": b"-1\r\nhello\r\n0\r\n\r\n",
    "missing CRLF after data": b"5\r\nhelloXX0\r\n\r\n",
    "LF only": b"5\nhello\n0\n\n",
    "size line over 4 KiB": b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n",
    "huge size": b"ffffffffffffffffffffffff\r\nhello\r\n",
}


@pytest.mark.parametrize("case", list(BAD_CHUNKS))
def test_bad_chunk_framing_all_at_once_is_400_and_backend_sees_nothing_whole(project_proxy, case):
    watcher = WatchingBackend(reply=None)
    try:
        head = b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % _target(watcher.port)
        answer = exchange(project_proxy.port, head + b"5\r\nhello\r\n" + BAD_CHUNKS[case])
        assert_clean_error(answer, 400)
        if watcher.first.wait(1):  # the proxy may have connected before it saw the error
            w = watcher.connection(1)
            assert w.end == RESET and b"0\r\n\r\n" not in w.data
    finally:
        watcher.close()


@pytest.mark.parametrize("case", list(BAD_CHUNKS))
def test_bad_chunk_framing_after_forwarding_began_aborts_the_backend(project_proxy, case):
    watcher = WatchingBackend(reply=None)
    try:
        with connect(project_proxy.port, timeout=5) as c:
            c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                         % _target(watcher.port))
            assert watcher.first.wait(5)
            w = watcher.watched[1]
            assert w.head_event.wait(5) and w.head is not None  # the backend has the head: forwarding began
            c.send(BAD_CHUNKS[case])
            raw, closed = c.read_until_closed(5)
        assert_clean_error(parse_first_response(raw, closed), 400)
        w = watcher.connection(1)
        assert w.end == RESET
        assert not w.data.endswith(b"0\r\n\r\n")
    finally:
        watcher.close()


def test_client_closing_mid_body_aborts_the_backend(project_proxy):
    watcher = WatchingBackend(reply=None)
    try:
        with connect(project_proxy.port, timeout=5) as c:
            c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello" % _target(watcher.port))
            assert watcher.first.wait(5) and watcher.watched[1].head_event.wait(5)
            c.sock.shutdown(socket.SHUT_WR)
            raw, closed = c.read_until_closed(5)
        assert closed
        assert b"Traceback" not in raw
        assert watcher.connection(1).end == RESET
    finally:
        watcher.close()


# ------------------------------------------------------------------ paths


DOT_SEGMENTS = ["/./", "/../", "/%2e/", "/%2E%2e/", "/.%2E/", "/..%2f", "/..%2F", "/%2e%2e%2f", "%2f..", "/..", "/.%2f", "%2F.%2F"]


@pytest.mark.parametrize("route", ["server", "port", "proxy/absolute"])
@pytest.mark.parametrize("dots", DOT_SEGMENTS)
def test_dot_segments_are_400(project_proxy, backend, route, dots):
    path = f"{B}{route}/{backend.port}/a{dots}b" if not dots.endswith("..") else f"{B}{route}/{backend.port}/a{dots}"
    answer = exchange(project_proxy.port, http_get(path))
    assert_clean_error(answer, 400, closed=False)
    assert answer.body == html_page(400, "Bad Request", "Paths with . or .. segments are not allowed.")
    assert backend.accepted == 0


@pytest.mark.parametrize("path", [f"/{PROJECT_ID}/./server/80/", f"/x/../{PROJECT_ID}/server/80/", "/..", "/."])
def test_dot_segments_before_the_base_are_400(project_proxy, path):
    assert exchange(project_proxy.port, http_get(path)).status == 400


@pytest.mark.parametrize("rest", ["a/.../b", "a/.hidden/b", "a/..b/c", "a/b../c", "a/%2e%2e%2e/b", "a/%2e.x/b"])
def test_dot_lookalikes_are_forwarded_verbatim(project_proxy, backend, rest):
    answer = exchange(project_proxy.port, http_get(f"{B}server/{backend.port}/{rest}?q=../x"))
    assert answer.status == 200
    assert backend.wait_requests(1)[0].target == f"/{rest}?q=../x".encode()


@pytest.mark.parametrize(
    "path",
    [
        f"{B}server/80%2f80/",
        f"{B}server/80%2F80/",
        f"{B}port%2f80/x/",
        f"{B}server%2F80/x/",
        f"{B}proxy/absolute%2f80/x/",
        f"{B}proxy/absolute/80%2f/x/",
        f"{B}proxy/localhost%2f:80/x/",
        f"/{PROJECT_ID}%2fserver/80/",
        f"/{PROJECT_ID}%2Fserver/80/",
    ],
)
def test_encoded_slash_in_prefix_is_400(project_proxy, path):
    answer = exchange(project_proxy.port, http_get(path))
    assert_clean_error(answer, 400, closed=False)
    assert answer.body == html_page(400, "Bad Request",
                                    "An encoded slash (%2F) is not allowed in the routing part of the URL.")


@pytest.mark.parametrize("route, full", [("server", False), ("port", True), ("proxy", False), ("proxy/absolute", True)])
def test_encoded_slash_after_prefix_reaches_backend_verbatim(project_proxy, backend, route, full):
    path = f"{B}{route}/{backend.port}/api/contents/a%2Fb%2fc.ipynb?path=%2F%2f"
    answer = exchange(project_proxy.port, http_get(path))
    assert answer.status == 200
    rest = b"/api/contents/a%2Fb%2fc.ipynb?path=%2F%2f"
    assert backend.wait_requests(1)[0].target == (path.encode() if full else rest)


def test_other_printable_and_high_bytes_forwarded_verbatim(project_proxy):
    watcher = WatchingBackend(reply=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    try:
        weird = b"/a\"<>{}|^`\\\x80\xe9\xff%ZZ%e9?q=\"<>{}|^\xe9#frag"
        raw = b"GET " + f"{B}server/{watcher.port}".encode() + weird + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answer = exchange(project_proxy.port, raw)
        assert answer.status == 200
        w = watcher.connection(1)
        assert w.head.startswith(b"GET " + weird + b" HTTP/1.1\r\n")
    finally:
        watcher.close()


# ------------------------------------------------------------------ refused upgrades


@pytest.mark.parametrize(
    "path, status",
    [
        (f"{B}nothing/", 404),
        ("/elsewhere/", 404),
        (f"{B}server/{{dead}}/", 502),
        (f"{B}proxy/example.org:80/", 403),
        (f"{B}server/80/../x", 400),
        (f"{B}server/80%2f80/", 400),
        (f"{B}server/8000", 301),
    ],
)
def test_refused_upgrade_gets_the_plain_status(project_proxy, path, status):
    path = path.format(dead=free_port())
    plain = exchange(project_proxy.port, http_get(path))
    upgrade = exchange(project_proxy.port, http_get(path, headers=WS_HEADERS))
    assert plain.status == upgrade.status == status
    assert upgrade.body == plain.body
    assert upgrade.header(b"upgrade") is None
    assert b"101" not in upgrade.status_line


def test_backend_refusing_upgrade_is_an_ordinary_response(project_proxy):
    reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope"
    b = RecordingBackend(lambda req: reply)
    try:
        answer = exchange(project_proxy.port, http_get(f"{B}server/{b.port}/ws", headers=WS_HEADERS))
        assert (answer.status, answer.body) == (400, b"nope")
        seen = b.wait_requests(1)[0]
        assert seen.header(b"upgrade") == b"websocket"
    finally:
        b.close()


# ------------------------------------------------------------------ backend failures


@pytest.mark.parametrize(
    "behaviour",
    ["close", "reset", "garbage", "half head"],
)
def test_backend_failure_before_response_is_502(project_proxy, behaviour):
    def script(conn, number):
        read_head(conn)
        if behaviour == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        elif behaviour == "garbage":
            conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
        elif behaviour == "half head":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-")

    b = ScriptedBackend(script)
    try:
        answer = exchange(project_proxy.port, http_get(f"{B}server/{b.port}/", close=False))
        assert_clean_error(answer, 502)
        assert b"SSH" not in answer.raw
    finally:
        b.close()


def test_backend_dying_mid_response_closes_the_client(project_proxy):
    def script(conn, number):
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")

    b = ScriptedBackend(script)
    try:
        with connect(project_proxy.port, timeout=5) as c:
            c.send(http_get(f"{B}server/{b.port}/", close=False))
            raw, closed = c.read_until_closed(5)
        assert closed
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        assert raw.endswith(b"\r\n\r\nhello")  # the truncation is visible: 5 of 10 bytes, then close
    finally:
        b.close()


# ------------------------------------------------------------------ Connection: close only when needed


def test_not_found_keeps_the_connection(project_proxy):
    with connect(project_proxy.port, timeout=5) as c:
        for _ in range(2):
            c.send(http_get(f"{B}nothing/", close=False))
            answer = parse_first_response(*c.read_framed(5))
            assert answer.status == 404 and answer.header(b"connection") is None
        c.send(http_get(f"{B}healthz", close=False))
        assert parse_first_response(*c.read_framed(5)).status == 200


def test_error_for_request_with_unread_body_closes(project_proxy):
    raw = b"POST %snothing/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" % B.encode()
    answer = exchange_keepalive(project_proxy.port, raw)
    assert_clean_error(answer, 404)


def test_connect_refused_502_says_so_and_closes_as_it_says(project_proxy):
    answer = exchange_keepalive(project_proxy.port, http_get(f"{B}server/{free_port()}/", close=False))
    assert answer.status == 502
    assert answer.closed == (answer.header(b"connection") == b"close")


def test_pipelined_request_after_a_rejected_one_is_served(project_proxy):
    raw = (http_get(f"{B}server/80/../x", close=False) + http_get(f"{B}nothing/", close=False)
           + http_get(f"{B}healthz"))
    with connect(project_proxy.port, timeout=5) as c:
        c.send(raw)
        data, closed = c.read_until_closed(5)
    statuses = [int(status) for status in re.findall(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ", data)]
    assert statuses == [400, 404, 200]
    assert closed and data.endswith(b"\r\n\r\nok\n")


def test_expect_continue_to_a_rejected_route_gets_no_100(project_proxy):
    raw = b"POST %snothing/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n" % B.encode()
    answer = exchange(project_proxy.port, raw)  # the body is never sent
    assert_clean_error(answer, 404)
    assert b"100 Continue" not in answer.raw


def test_http10_keep_alive_error_keeps_the_connection(project_proxy):
    raw = b"GET %snothing/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % B.encode()
    answer = exchange_keepalive(project_proxy.port, raw)
    assert answer.status == 404
    assert answer.header(b"connection") == b"keep-alive" and not answer.closed


def test_http10_error_closes(project_proxy):
    answer = exchange(project_proxy.port, b"GET %snothing/ HTTP/1.0\r\n\r\n" % B.encode())
    assert_clean_error(answer, 404)
