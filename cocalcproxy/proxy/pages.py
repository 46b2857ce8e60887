"""Responses the proxy writes itself: error pages, redirects, small local pages.

Pure bytes builders.  Anything that came from a request is HTML-escaped (or
JSON-encoded); internal exception text never reaches these functions (SPEC §3).
"""

from __future__ import annotations

import html
import json

from .. import __version__
from ..http1.serialize import head_bytes, reason_phrase, status_line

reason = reason_phrase


def _preference(accept: bytes, media: bytes) -> tuple[float, int]:
    """(q, specificity) of the Accept entry that best matches ``media``; an
    explicitly listed type beats a wildcard at the same q."""
    best = (0.0, -1)
    major = media.split(b"/")[0] + b"/*"
    for part in accept.split(b","):
        fields = part.strip().split(b";")
        mtype = fields[0].strip().lower()
        if mtype == media:
            specificity = 2
        elif mtype == major:
            specificity = 1
        elif mtype == b"*/*":
            specificity = 0
        else:
            continue
        q = 1.0
        for param in fields[1:]:
            key, _, val = param.strip().partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    q = float(val.strip())
                except ValueError:
                    q = 0.0
        if specificity > best[1]:
            best = (q, specificity)
    return best if best[1] >= 0 else (0.0, -1)


def wants_json(accept: bytes | None) -> bool:
    """True when ``Accept`` prefers application/json over text/html.

    Media types are case-insensitive.  A header that names neither JSON nor
    ``application/*`` gets HTML (``*/*`` alone is a browser or curl)."""
    if not accept:
        return False
    accept = accept.lower()
    if b"json" not in accept and b"application/*" not in accept:
        return False
    json_pref = _preference(accept, b"application/json")
    return json_pref[0] > 0 and json_pref > _preference(accept, b"text/html")


def response(
    status: int,
    body: bytes,
    content_type: bytes,
    *,
    close: bool = False,
    keep_alive_10: bool = False,
    head_only: bool = False,
    extra: tuple[bytes, ...] = (),
) -> bytes:
    head = response_head(status, content_type, len(body), close=close, keep_alive_10=keep_alive_10, extra=extra)
    return head if head_only else head + body


def response_head(status: int, content_type: bytes, length: int, *, close: bool = False,
                  keep_alive_10: bool = False, extra: tuple[bytes, ...] = ()) -> bytes:
    """The head of a response the proxy makes itself (an error page, a file)."""
    lines = [
        b"Content-Type: " + content_type,
        b"Content-Length: %d" % length,
        b"Cache-Control: no-store",
        *extra,
    ]
    if close:
        lines.append(b"Connection: close")
    elif keep_alive_10:
        lines.append(b"Connection: keep-alive")
    return head_bytes(status_line(status), lines)


def error_body(status: int, message: str, as_json: bool) -> tuple[bytes, bytes]:
    phrase = reason(status)
    if as_json:
        doc = {"status": status, "error": phrase, "message": message}
        return json.dumps(doc).encode() + b"\n", b"application/json"
    text = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{status} {html.escape(phrase)}</title></head>\n"
        f"<body><h1>{status} {html.escape(phrase)}</h1>\n<p>{html.escape(message)}</p>\n"
        f"<hr><address>cocalcproxy {__version__}</address></body></html>\n"
    )
    return text.encode("utf-8"), b"text/html; charset=utf-8"


def error_response(
    status: int,
    message: str,
    *,
    accept: bytes | None = None,
    close: bool = False,
    keep_alive_10: bool = False,
    head_only: bool = False,
    extra: tuple[bytes, ...] = (),
) -> bytes:
    body, ctype = error_body(status, message, wants_json(accept))
    return response(status, body, ctype, close=close, keep_alive_10=keep_alive_10, head_only=head_only, extra=extra)


def redirect_response(
    location: bytes, status: int = 301, *, close: bool = False, keep_alive_10: bool = False, head_only: bool = False
) -> bytes:
    safe = html.escape(location.decode("latin-1"))
    body = f'<!DOCTYPE html>\n<html><body><a href="{safe}">Moved here</a></body></html>\n'.encode("latin-1")
    return response(
        status,
        body,
        b"text/html; charset=utf-8",
        close=close,
        keep_alive_10=keep_alive_10,
        head_only=head_only,
        extra=(b"Location: " + location,),
    )
