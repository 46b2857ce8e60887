"""Parse HTTP/1.x request and response heads into values that keep their raw bytes.

A head is parsed in one pass: one C-level regular expression validates the whole
header block (so a bad byte anywhere is found without a Python loop), then each
line is split once at its first colon.  Every header keeps its raw line, so a
proxy that forwards a header unchanged forwards it byte for byte, and repeated
headers stay repeated, in order (SPEC §3).

While splitting, the few headers that decide framing and connection handling are
interpreted, and the smuggling rules of SPEC §3 are applied (each rule names the
attack it stops).  Nothing here knows about sockets.
"""

from __future__ import annotations

import re

from .errors import BadRequest, BadResponse, NotImplementedCoding, ProtocolError, VersionNotSupported

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
#: A whole header block: name ":" value CRLF, repeated.  Values are VCHAR, obs-text,
#: SP and HTAB only — so NUL, CR, LF and other control bytes can never sit in one.
_HEADER_BLOCK = re.compile(rb"(?:" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*\r\n)*")
_TOKEN_RE = re.compile(_TOKEN)
#: SPEC §3: control bytes 0x00–0x20 and DEL are never allowed in a request-target.
_TARGET_BAD = re.compile(rb"[\x00-\x20\x7f]")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_DIGITS = re.compile(rb"[0-9]{1,18}")
#: RFC 9110 §15: a status code is three digits, the first 1-5 (we accept up to 9).
_STATUS = re.compile(rb"[1-9][0-9]{2}")
_REASON_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

#: Headers whose values decide framing or connection handling.
_SPECIAL = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"host", b"upgrade", b"expect")
)

Header = tuple  # (lower_name: bytes, value: bytes, raw_line: bytes)


class _Headers:
    """Header lookups shared by request and response heads (``headers`` is set by each)."""

    __slots__ = ()

    def get(self, lname: bytes) -> bytes | None:
        """The value of the last header called ``lname`` (lower case), or None."""
        for name, value, _ in reversed(self.headers):
            if name == lname:
                return value
        return None

    def get_all(self, lname: bytes) -> list[bytes]:
        return [value for name, value, _ in self.headers if name == lname]


class RequestHead(_Headers):
    """A parsed request head.  ``headers`` is a list of (lower_name, value, raw_line)."""

    __slots__ = (
        "method",
        "target",
        "version",
        "is_11",
        "headers",
        "content_length",
        "chunked",
        "keep_alive",
        "upgrade",
        "expect_continue",
        "host",
        "connection_tokens",
    )

    def __init__(self, method: bytes, target: bytes, version: bytes, headers: list) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.is_11 = version == b"HTTP/1.1"
        self.headers = headers

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<RequestHead {self.method!r} {self.target!r} {self.version!r}>"


class ResponseHead(_Headers):
    """A parsed response head (status line + headers)."""

    __slots__ = (
        "version",
        "status",
        "reason",
        "headers",
        "content_length",
        "chunked",
        "transfer_encoding",
        "keep_alive",
        "connection_tokens",
        "raw_status_line",
    )

    def __init__(self, version: bytes, status: int, reason: bytes, headers: list, raw_status_line: bytes) -> None:
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.raw_status_line = raw_status_line

    def __repr__(self) -> str:
        return f"<ResponseHead {self.status} {self.reason!r}>"


def _split_headers(block: bytes, error: type[ProtocolError]) -> tuple[list, dict]:
    """Validate and split a header block; also collect the special headers' values."""
    if not _HEADER_BLOCK.fullmatch(block):
        raise error(_diagnose(block))
    lines = block.split(b"\r\n")
    lines.pop()  # the block ends with CRLF
    headers = []
    special: dict[bytes, list[bytes]] = {}
    append = headers.append
    for raw in lines:
        i = raw.index(b":")
        lname = raw[:i].lower()
        value = raw[i + 1 :].strip(b" \t")
        append((lname, value, raw))
        if lname in _SPECIAL:
            special.setdefault(lname, []).append(value)
    return headers, special


def _diagnose(block: bytes) -> str:
    """Say precisely why a header block failed validation (slow path, errors only)."""
    for line in block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            return "obsolete line folding in headers is not allowed"
        name, colon, value = line.partition(b":")
        if not colon:
            return "malformed header line (no colon)"
        if not name:
            return "empty header name"
        if name[-1:] in (b" ", b"\t"):
            return "whitespace between header name and colon"
        if not _TOKEN_RE.fullmatch(name):
            return "invalid character in header name"
        if b"\x00" in value or b"\r" in value or b"\n" in value:
            return "NUL, CR or LF in header value"
        return "invalid character in header value"
    return "malformed header block"


def _tokens(values: list[bytes] | None) -> list[bytes]:
    """Comma-separated list values, lower-cased, empty elements dropped."""
    if not values:
        return []
    out = []
    for value in values:
        for part in value.split(b","):
            part = part.strip(b" \t").lower()
            if part:
                out.append(part)
    return out


def _content_length(values: list[bytes], error: type[ProtocolError]) -> int:
    """One Content-Length, or identical repeats (``5, 5``); differing values are a
    request-smuggling vector (two parsers pick different ones) → error."""
    seen = None
    for value in values:
        for part in value.split(b","):
            part = part.strip(b" \t")
            if not _DIGITS.fullmatch(part):
                raise error("invalid Content-Length")
            n = int(part)
            if seen is not None and n != seen:
                raise error("differing Content-Length values")
            seen = n
    if seen is None:
        raise error("invalid Content-Length")
    return seen


def parse_request_head(head: bytes, max_request_line: int = 8192) -> RequestHead:
    """Parse ``head`` — the request line and header lines, each ending in CRLF,
    without the final empty line.  Raises a ``ProtocolError`` with the status
    SPEC §3 assigns."""
    eol = head.find(b"\r\n")
    line = head[:eol]
    if len(line) > max_request_line:
        from .errors import UriTooLong

        raise UriTooLong("request line too long")
    parts = line.split(b" ")
    if len(parts) != 3:
        raise BadRequest("malformed request line")
    method, target, version = parts
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        if _VERSION.fullmatch(version):
            raise VersionNotSupported("HTTP version not supported")
        raise BadRequest("malformed request line")
    if not _TOKEN_RE.fullmatch(method):
        raise BadRequest("malformed request method")
    if not target or _TARGET_BAD.search(target):
        raise BadRequest("invalid character in request target")
    headers, special = _split_headers(head[eol + 2 :], BadRequest)
    req = RequestHead(method, target, version, headers)
    _request_semantics(req, special)
    return req


def _request_semantics(req: RequestHead, special: dict) -> None:
    """Framing and connection decisions for a request (SPEC §3 smuggling rules)."""
    hosts = special.get(b"host")
    if hosts is None:
        if req.is_11:
            raise BadRequest("missing Host header")
        req.host = None
    elif len(hosts) > 1:
        raise BadRequest("more than one Host header")
    else:
        req.host = hosts[0]
    te_values = special.get(b"transfer-encoding")
    cl_values = special.get(b"content-length")
    req.chunked = False
    req.content_length = None
    if te_values is not None:
        if cl_values is not None:
            # CL.TE / TE.CL desync: two parsers would frame the body differently.
            raise BadRequest("both Content-Length and Transfer-Encoding")
        if not req.is_11:
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
        codings = _tokens(te_values)
        if not codings or codings[-1] != b"chunked":
            # Without chunked last the body length is unknowable: never guess.
            raise BadRequest("request Transfer-Encoding must end with chunked")
        if codings.count(b"chunked") > 1:
            raise BadRequest("chunked applied more than once")
        if len(codings) > 1:
            raise NotImplementedCoding("transfer-coding not implemented")
        req.chunked = True
    elif cl_values is not None:
        req.content_length = _content_length(cl_values, BadRequest)
    conn = _tokens(special.get(b"connection"))
    req.connection_tokens = conn
    if req.is_11:
        req.keep_alive = b"close" not in conn
    else:
        req.keep_alive = b"keep-alive" in conn and b"close" not in conn
    upgrade = False
    if b"upgrade" in conn:
        upgrade = b"websocket" in _tokens(special.get(b"upgrade"))
    req.upgrade = upgrade
    expect = special.get(b"expect")
    req.expect_continue = bool(expect) and expect[-1].lower() == b"100-continue"


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head from a backend; any violation is a ``BadResponse`` (502)."""
    eol = head.find(b"\r\n")
    line = head[:eol]
    version, _, rest = line.partition(b" ")
    if not _VERSION.fullmatch(version) or not version.startswith(b"HTTP/1."):
        raise BadResponse("malformed status line from backend")
    status_b, _, reason = rest.partition(b" ")
    if not _STATUS.fullmatch(status_b) or _REASON_BAD.search(reason):
        raise BadResponse("malformed status line from backend")
    headers, special = _split_headers(head[eol + 2 :], BadResponse)
    resp = ResponseHead(version, int(status_b), reason, headers, line)
    te = _tokens(special.get(b"transfer-encoding"))
    resp.transfer_encoding = bool(special.get(b"transfer-encoding"))
    resp.chunked = bool(te) and te[-1] == b"chunked"
    if resp.chunked and te.count(b"chunked") > 1:
        raise BadResponse("chunked applied more than once by backend")
    resp.content_length = None
    cl = special.get(b"content-length")
    if cl is not None and not resp.transfer_encoding:
        resp.content_length = _content_length(cl, BadResponse)
    conn = _tokens(special.get(b"connection"))
    resp.connection_tokens = conn
    if version == b"HTTP/1.1":
        resp.keep_alive = b"close" not in conn
    else:
        resp.keep_alive = b"keep-alive" in conn and b"close" not in conn
    return resp
