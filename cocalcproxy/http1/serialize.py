"""Heads as bytes: the one place where request and response heads are joined.

Callers decide *which* lines a head has (the header policy in
``routing/headers.py``, the error pages in ``proxy/pages.py``, a server's
``rewrite_response``); this module only frames them: a first line, header
lines, CRLF after each, and the empty line.  Nothing is re-parsed: raw header
lines kept by the parser go out byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

from .head import RequestHead

CRLF = b"\r\n"


def head_bytes(first_line: bytes, header_lines: Iterable[bytes]) -> bytes:
    """``first_line`` and ``header_lines`` (without line ends) as a complete head."""
    return CRLF.join((first_line, *header_lines, b"", b""))


def request_line(method: bytes, target: bytes, version: bytes) -> bytes:
    return method + b" " + target + b" " + version


def status_line(status: int, reason: bytes | None = None, version: bytes = b"HTTP/1.1") -> bytes:
    """``HTTP/1.1 404 Not Found``; the standard reason phrase unless one is given."""
    if reason is None:
        reason = reason_phrase(status).encode("ascii")
    return b"%s %d %s" % (version, status, reason)


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def header_line(name: bytes, value: bytes) -> bytes:
    return name + b": " + value


def raw_request_head(req: RequestHead) -> bytes:
    """The request head exactly as it was received (for a protocol that takes the
    connection over and parses the head again, such as Autobahn)."""
    return head_bytes(request_line(req.method, req.target, req.version), (raw for _, _, raw in req.headers))


__all__ = ["CRLF", "head_bytes", "header_line", "raw_request_head", "reason_phrase", "request_line", "status_line"]
