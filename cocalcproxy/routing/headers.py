"""Header policy for forwarded requests and relayed responses (SPEC §3).

Pure functions from a parsed head to the head to send on.  Every header we
keep is copied as its raw line (repeated headers stay repeated, in order); only
the request-target and the headers named here change.  The lines are framed
into bytes by ``http1.serialize``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..http1.head import RequestHead, ResponseHead
from ..http1.cookies import without_cookies
from ..http1.serialize import head_bytes, request_line

#: SPEC §3 hop-by-hop headers (Transfer-Encoding is kept: we forward chunked
#: bodies as they are, and drop it only when re-framing).
HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"))
_CONNECTION_COMMON = frozenset((b"close", b"keep-alive", b"upgrade"))
#: Never removed because ``Connection`` names them: the body we forward is framed by
#: them (dropping one would smuggle the body as a next message), and Host is kept.
_NOT_DROPPABLE = frozenset((b"content-length", b"transfer-encoding", b"host"))
_CONTEXT_HEADERS = (b"X-Forwarded-Context", b"X-ProxyContextPath", b"X-Forwarded-Prefix")
_CONTEXT_LOWER = frozenset(h.lower() for h in _CONTEXT_HEADERS)
_XF = b"x-forwarded-"


@dataclass(frozen=True, slots=True)
class Peer:
    """Facts about one client connection that the forwarded headers need.

    ``address`` is the peer's IP as text (``b""`` for a UNIX-socket peer),
    ``trusted`` whether it is inside ``--trusted-proxy``, ``proto`` the
    listener's scheme and ``port`` its port.
    """

    address: bytes
    trusted: bool
    proto: bytes = b"http"
    port: bytes = b""


def _dropped_names(tokens: list[bytes]) -> frozenset[bytes] | None:
    """Extra headers named by ``Connection`` (beyond close/keep-alive/upgrade)."""
    extra = [t for t in tokens if t not in _CONNECTION_COMMON and t not in _NOT_DROPPABLE]
    return frozenset(extra) if extra else None


def request_head_bytes(req: RequestHead, target: bytes, peer: Peer, context_path: bytes | None,
                       set_headers: tuple[tuple[bytes, bytes], ...] = (), strip: frozenset[bytes] = frozenset(),
                       strip_cookies: frozenset[bytes] = frozenset()) -> bytes:
    """The head to send to the backend for ``req``, with request-target ``target``.

    ``set_headers`` (a server's ``request_headers_override``, the hub's secret)
    replace any same-named header, ours included; framing and connection
    headers are never overridden.  ``strip`` names headers (lower case) that
    are not forwarded, ``strip_cookies`` cookies taken out of every ``Cookie``
    header (one left empty is dropped): credentials that must not reach a backend.
    """
    extra_drop = _dropped_names(req.connection_tokens)
    overridden = _overridden_names(set_headers) if set_headers else None
    upgrade = req.upgrade
    trusted = peer.trusted
    lines = []
    append = lines.append
    xff_at = -1
    seen_xf: set[bytes] = set()
    for lname, value, raw in req.headers:
        if lname in HOP_BY_HOP:
            if upgrade and lname == b"upgrade":
                append(raw)
            continue
        if ((extra_drop is not None and lname in extra_drop) or (strip and lname in strip)
                or (overridden is not None and lname in overridden)):
            continue
        if strip_cookies and lname == b"cookie":
            kept = without_cookies(value, strip_cookies)
            if kept:
                append(b"Cookie: " + kept)
            continue
        if lname.startswith(_XF) or lname == b"x-proxycontextpath":
            if not trusted or (context_path is not None and lname in _CONTEXT_LOWER):
                continue
            if lname == b"x-forwarded-for":
                xff_at = len(lines)
            seen_xf.add(lname)
        append(raw)
    ours = len(lines)  # the client's lines end here; set_headers already left them out
    _forwarded_lines(lines, req, peer, xff_at, seen_xf)
    if context_path is not None:
        for name in _CONTEXT_HEADERS:
            append(name + b": " + context_path)
    if upgrade:
        append(b"Connection: upgrade")
    if overridden is not None:
        lines[ours:] = _override(lines[ours:], set_headers, overridden)
    return head_bytes(request_line(req.method, target, req.version), lines)


def _forwarded_lines(lines: list[bytes], req: RequestHead, peer: Peer, xff_at: int, seen_xf: set[bytes]) -> None:
    """X-Forwarded-For gets the peer appended; -Proto/-Host/-Port are set unless
    a trusted peer already sent them (SPEC §3)."""
    if peer.address:
        if xff_at >= 0:
            lines[xff_at] = lines[xff_at].rstrip(b" \t") + b", " + peer.address
        else:
            lines.append(b"X-Forwarded-For: " + peer.address)
    if b"x-forwarded-proto" not in seen_xf:
        lines.append(b"X-Forwarded-Proto: " + peer.proto)
    if req.host is not None and b"x-forwarded-host" not in seen_xf:
        lines.append(b"X-Forwarded-Host: " + req.host)
    if peer.port and b"x-forwarded-port" not in seen_xf:
        lines.append(b"X-Forwarded-Port: " + peer.port)


_NOT_OVERRIDABLE = frozenset((b"content-length", b"transfer-encoding", b"connection", b"upgrade"))


def _overridden_names(headers: tuple[tuple[bytes, bytes], ...]) -> frozenset[bytes]:
    return frozenset(n.lower() for n, _ in headers) - _NOT_OVERRIDABLE


def _override(lines: list[bytes], headers: tuple[tuple[bytes, bytes], ...], names: frozenset[bytes]) -> list[bytes]:
    """``lines`` (the ones we added) with each ``(name, value)`` of ``names`` replacing any same-named line."""
    kept = [ln for ln in lines if ln.split(b":", 1)[0].strip().lower() not in names]
    return kept + [n + b": " + v for n, v in headers if n.lower() in names]


def rewrite_location(location: bytes, context_path: bytes) -> bytes:
    """Prefix an absolute-path Location with the context path (SPEC §3), unless it
    already carries it.  Relative, scheme-relative and full URLs are left alone."""
    if location[:1] != b"/" or location[:2] == b"//":
        return location
    if location.startswith(context_path):
        after = location[len(context_path) : len(context_path) + 1]
        if after in (b"", b"/", b"?", b"#"):
            return location
    return context_path + location


def response_head_bytes(
    resp: ResponseHead,
    *,
    keep_alive: bool,
    client_is_11: bool,
    reframe: bool,
    context_path: bytes | None,
    upgrade: bool = False,
) -> bytes:
    """The head to send to the client.

    ``keep_alive``: whether the client connection stays open after this response
    (adds ``Connection: close`` otherwise); ``reframe``: the chunked body is being
    decoded for an HTTP/1.0 client and ends with the connection; ``upgrade``: a
    101 that switches to a tunnel (the Upgrade header is kept).
    """
    extra_drop = _dropped_names(resp.connection_tokens)
    drop_length = reframe or resp.transfer_encoding
    rewrite = context_path is not None and 300 <= resp.status < 400
    status_line = resp.raw_status_line
    if resp.version != b"HTTP/1.1":
        # RFC 9110 §2.5: a proxy sends its own HTTP version; the framing decisions
        # (close-delimited bodies, keep-alive) were already made for the backend's.
        status_line = b"HTTP/1.1" + status_line[len(resp.version) :]
    lines = []
    append = lines.append
    for lname, value, raw in resp.headers:
        if lname in HOP_BY_HOP:
            if upgrade and lname == b"upgrade":
                append(raw)
            continue
        if extra_drop is not None and lname in extra_drop:
            continue
        if drop_length:
            if lname == b"content-length":
                continue  # TE wins over CL; never forward both (response smuggling)
            if reframe and lname == b"transfer-encoding":
                continue
        if rewrite and lname == b"location":
            new = rewrite_location(value, context_path)
            if new is not value:
                append(b"Location: " + new)
                continue
        append(raw)
    if upgrade:
        append(b"Connection: upgrade")
    elif not keep_alive:
        append(b"Connection: close")
    elif not client_is_11:
        append(b"Connection: keep-alive")
    return head_bytes(status_line, lines)
