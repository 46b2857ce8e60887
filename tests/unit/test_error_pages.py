"""Pages the proxy writes itself (cocalcproxy/proxy/errors.py, SPEC §3): HTML-escaped,
JSON when Accept prefers it, exact framing, Connection handling."""

from __future__ import annotations

import json

import pytest

from cocalcproxy.http1 import parse_response_head
from cocalcproxy.proxy.pages import error_response, redirect_response, wants_json


def split(resp: bytes):
    head, _, body = resp.partition(b"\r\n\r\n")
    parsed = parse_response_head(head + b"\r\n")
    assert parsed.content_length == len(body)
    return parsed, body


@pytest.mark.parametrize(
    "accept,json_wanted",
    [
        (None, False),
        (b"", False),
        (b"text/html", False),
        (b"*/*", False),
        (b"application/json", True),
        (b"Application/JSON", True),
        (b"text/html;q=0.1, application/*", True),
        (b"application/json, text/plain", True),
        (b"text/html, application/json", False),  # equal q: HTML wins
        (b"text/html;q=0.9, application/json", True),
        (b"application/json;q=0.5, text/html;q=0.8", False),
        (b"application/json;q=0", False),
        (b"application/json, */*;q=0.1", True),
        (b"application/*", True),  # any application type: JSON qualifies, HTML does not
        (b"application/json;q=0.9, text/*;q=0.5", True),
        (b"text/*, application/json;q=0.9", False),
        (b"application/json;q=bogus", False),
        (b"application/jsonx", False),
        (b"application/problem+json", False),
    ],
)
def test_wants_json(accept, json_wanted: bool) -> None:
    assert wants_json(accept) is json_wanted


def test_html_error_page_escapes_the_message() -> None:
    message = "Host '<script>alert(\"x\")</script>&amp;' is not allowed."
    resp, body = split(error_response(403, message))
    assert resp.status == 403 and resp.reason == b"Forbidden"
    assert resp.get(b"content-type") == b"text/html; charset=utf-8"
    text = body.decode()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "&amp;amp;" in text and "&#x27;" in text and "&quot;x&quot;" in text
    assert "403 Forbidden" in text


def test_allowlist_message_in_a_page() -> None:
    resp, body = split(error_response(403, "Host 'db.internal' is not allowed."))
    assert b"Host &#x27;db.internal&#x27; is not allowed." in body


def test_json_error_page() -> None:
    message = "Host '<x>' is not allowed."
    resp, body = split(error_response(403, message, accept=b"application/json"))
    assert resp.get(b"content-type") == b"application/json"
    assert json.loads(body) == {"status": 403, "error": "Forbidden", "message": message}


@pytest.mark.parametrize(
    "status,reason",
    [
        (400, b"Bad Request"),
        (404, b"Not Found"),
        (414, b"Request-URI Too Long"),
        (431, b"Request Header Fields Too Large"),
        (501, b"Not Implemented"),
        (502, b"Bad Gateway"),
        (504, b"Gateway Timeout"),
        (505, b"HTTP Version Not Supported"),
        (599, b"Error"),
    ],
)
def test_status_lines(status: int, reason: bytes) -> None:
    resp, _ = split(error_response(status, "x"))
    assert (resp.status, resp.reason) == (status, reason)


@pytest.mark.parametrize(
    "kw,connection",
    [
        ({}, None),
        ({"close": True}, b"close"),
        ({"keep_alive_10": True}, b"keep-alive"),
        ({"close": True, "keep_alive_10": True}, b"close"),
    ],
)
def test_connection_header(kw, connection) -> None:
    resp, _ = split(error_response(404, "x", **kw))
    assert resp.get(b"connection") == connection


def test_head_only_has_the_length_of_the_body_but_no_body() -> None:
    full = error_response(404, "nope")
    head_only = error_response(404, "nope", head_only=True)
    assert full.startswith(head_only) and head_only.endswith(b"\r\n\r\n")
    assert parse_response_head(head_only[:-2]).content_length == len(full) - len(head_only)


def test_extra_headers() -> None:
    resp, _ = split(error_response(503, "not running", extra=(b"Retry-After: 5",)))
    assert resp.get(b"retry-after") == b"5"


def test_no_store() -> None:
    resp, _ = split(error_response(502, "x"))
    assert resp.get(b"cache-control") == b"no-store"


def test_redirect_page_escapes_location_in_the_body() -> None:
    location = b'/pid/server/8000/?a="><script>&b=1'
    resp, body = split(redirect_response(location))
    assert resp.status == 301 and resp.get(b"location") == location
    assert b"<script>" not in body and b"&quot;&gt;&lt;script&gt;&amp;b=1" in body


def test_redirect_keeps_high_bytes() -> None:
    location = b"/caf\xc3\xa9/"
    resp, body = split(redirect_response(location, 302, close=True))
    assert resp.status == 302 and resp.get(b"location") == location and resp.get(b"connection") == b"close"
