"""``RewriteBuffer`` — a ``proxy.exchange.ResponseFilter`` — fed the way the front
feeds it (``start`` with the head, ``feed`` with decoded body chunks,
``finish``): what the callables get, what they may change, and the framing of
the response that goes out.  End to end in ``tests/integration/test_servers.py``."""

from __future__ import annotations

import pytest

from cocalcproxy.http1 import parse_request_head
from cocalcproxy.proxy.exchange import FilterError
from cocalcproxy.roles.project.rewrite import RewritableResponse, RewriteBuffer
from cocalcproxy.routing.callables import RequestView

REQ = RequestView.from_head(parse_request_head(b"GET /app/page?q=1 HTTP/1.1\r\nHost: proxy.test\r\nX-In: 1\r\n"))
INFO = {"request": REQ, "host": "localhost", "port": 8123, "path": "/page"}
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Up: a\r\nX-Up: b\r\nContent-Length: 11\r\n\r\n"


def run(rewriters, head: bytes = HEAD, chunks=(b"hello", b" world"), max_bytes: int = 1000) -> bytes:
    buf = RewriteBuffer(list(rewriters), INFO, max_bytes)
    buf.start(head)
    buf.feed(list(chunks))
    return buf.finish()


def split(out: bytes) -> tuple[bytes, list[bytes], bytes]:
    head, _, body = out.partition(b"\r\n\r\n")
    first, *lines = head.split(b"\r\n")
    return first, lines, body


def test_without_edits_the_response_is_the_same_with_a_fresh_content_length():
    out = run([lambda response: None])
    assert out == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Up: a\r\nX-Up: b\r\n"
                   b"Content-Length: 11\r\n\r\nhello world")


# ------------------------------------------------------------ what callables get


def test_callables_get_only_the_arguments_they_declare():
    seen = {}

    def only_response(response):
        seen["only_response"] = type(response)

    def some(path, host, port):
        seen["some"] = (path, host, port)

    def request_and_orig(request, orig_response):
        seen["request_and_orig"] = (request, orig_response.code)

    def everything(**kw):
        seen["everything"] = sorted(kw)

    run([only_response, some, request_and_orig, everything])
    assert seen == {
        "only_response": RewritableResponse,
        "some": ("/page", "localhost", 8123),
        "request_and_orig": (REQ, 200),
        "everything": ["host", "orig_response", "path", "port", "request", "response"],
    }


def test_the_response_as_parsed_for_the_callables():
    seen = []

    def look(response):
        seen.append((response.code, response.reason, response.headers.items(), response.body))

    run([look])
    # framing headers are the proxy's business: the callable never sees them
    assert seen == [(200, "OK", [("Content-Type", "text/plain"), ("X-Up", "a"), ("X-Up", "b")], b"hello world")]


def test_orig_response_is_a_copy_the_edits_do_not_touch():
    seen = []

    def edit(response):
        response.body = b"changed"
        response.headers["X-Up"] = "z"

    def look(response, orig_response):
        seen.append((response.body, orig_response.body, orig_response.headers.get_list("X-Up")))

    run([edit, look])
    assert seen == [(b"changed", b"hello world", ["a", "b"])]


def test_callables_run_in_order_and_see_the_previous_edits():
    def exclaim(response):
        response.body = response.body + b"!"

    def question(response):
        response.body = response.body.replace(b"!", b"?")

    assert split(run([exclaim, question]))[2] == b"hello world?"
    assert split(run([question, exclaim]))[2] == b"hello world!"


# ------------------------------------------------------------ edits


def test_code_and_reason_can_be_changed():
    def edit(response):
        response.code = 404
        response.reason = "Gone Fishing"

    assert split(run([edit]))[0] == b"HTTP/1.1 404 Gone Fishing"


def test_headers_can_be_added_replaced_and_removed():
    def edit(response):
        response.headers["Content-Type"] = "text/html"  # replaces
        del response.headers["X-Up"]  # removes every X-Up
        response.headers.add("X-New", "1")
        response.headers.add("X-New", 2)

    _, lines, _ = split(run([edit]))
    assert lines == [b"Content-Type: text/html", b"X-New: 1", b"X-New: 2", b"Content-Length: 11"]


def test_body_can_be_replaced_by_bytes_or_text_and_content_length_follows():
    def to_bytes(response):
        response.body = b"x" * 300

    def to_text(response):
        response.body = "héllo"  # sent as UTF-8

    first, lines, body = split(run([to_bytes]))
    assert body == b"x" * 300 and lines[-1] == b"Content-Length: 300"
    first, lines, body = split(run([to_text]))
    assert body == "héllo".encode() and lines[-1] == b"Content-Length: 6"


def test_chunked_framing_is_replaced_by_one_content_length():
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n"
    out = run([lambda response: None], head=head, chunks=[b"ab", b"cd"])
    assert out == b"HTTP/1.1 200 OK\r\nX-Up: 1\r\nContent-Length: 4\r\n\r\nabcd"


def test_callables_cannot_set_the_framing_headers():
    def frame(response):
        response.headers["Content-Length"] = "999"
        response.headers["Transfer-Encoding"] = "chunked"
        response.headers["Connection"] = "keep-alive"

    _, lines, body = split(run([frame]))
    assert body == b"hello world"
    assert [line for line in lines if line.lower().startswith((b"content-length", b"transfer-encoding", b"connection"))] \
        == [b"Content-Length: 11"]


def test_the_connection_line_the_front_chose_is_kept_as_it_was():
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\n"

    def try_keep_alive(response):
        response.headers["Connection"] = "keep-alive"

    out = run([try_keep_alive], head=head)
    assert out == b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello world"


# ------------------------------------------------------------ limits and failures


def test_a_body_up_to_max_bytes_is_held():
    out = run([lambda response: None], chunks=[b"a" * 60, b"b" * 40], max_bytes=100)
    assert split(out)[2] == b"a" * 60 + b"b" * 40


def test_over_max_bytes_is_a_502_as_soon_as_it_is_fed():
    buf = RewriteBuffer([lambda response: None], INFO, 100)
    buf.start(HEAD)
    buf.feed([b"a" * 60])
    with pytest.raises(FilterError) as e:
        buf.feed([b"b" * 30, b"c" * 11])  # 101 bytes
    assert e.value.status == 502
    assert "--rewrite-max-bytes" in e.value.message
    assert buf.parts == []  # what was held is dropped at once


def test_a_raising_callable_is_a_502_without_the_exception_text():
    def broken(response):
        raise ValueError("secret internal detail")

    with pytest.raises(FilterError) as e:
        run([broken])
    assert e.value.status == 502
    assert e.value.message == "The server's rewrite_response failed."
    assert "secret" not in str(e.value) and e.value.__cause__ is None and e.value.__suppress_context__


def test_a_callable_that_sets_a_bad_code_is_a_502():
    def bad(response):
        response.code = "two hundred"

    with pytest.raises(FilterError) as e:
        run([bad])
    assert e.value.status == 502


def test_a_header_that_cannot_be_sent_is_a_502():
    def bad(response):
        response.headers["X-Text"] = "naïve ✓"  # not latin-1

    with pytest.raises(FilterError) as e:
        run([bad])
    assert e.value.status == 502
