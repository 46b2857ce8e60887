"""``rewrite_response`` (jupyter-server-proxy compatibility): hold one response,
let the server's callables edit it, send it with a fresh ``Content-Length``.

``RewriteBuffer`` is a ``proxy.exchange.ResponseFilter``: the front feeds it
and sends what it returns; it never sees a transport.  Only exchanges whose
``Forward.rewrite`` is set use it; the streaming relay stays untouched for
everything else.  The buffer is bounded: beyond ``max_bytes`` the client gets
502 (``--rewrite-max-bytes``).
"""

from __future__ import annotations

import copy

from twisted.logger import Logger

from ...http1.serialize import head_bytes, header_line, status_line
from ...proxy.exchange import FilterError
from ...routing.callables import Headers, RequestView, call_with_declared

log = Logger()

_FRAMING = ("connection", "content-length", "transfer-encoding")


class RewritableResponse:
    """What a ``rewrite_response`` callable edits in place: ``code``, ``reason``, ``headers``, ``body``."""

    def __init__(self, code: int, reason: str, headers: Headers, body: bytes) -> None:
        self.code = code
        self.reason = reason
        self.headers = headers
        self.body = body


class RewriteBuffer:
    def __init__(self, rewriters, info: dict, max_bytes: int) -> None:
        self.rewriters = rewriters
        self.info = info  # request, host, port, path: what the callables may declare
        self.max_bytes = max_bytes
        self.head = b""
        self.parts: list[bytes] = []
        self.size = 0

    def start(self, head: bytes) -> None:
        """The head the relay would have sent the client (body framing to be redone)."""
        self.head = head

    def feed(self, chunks: list[bytes]) -> None:
        for c in chunks:
            self.size += len(c)
            if self.size > self.max_bytes:
                self.parts = []
                raise FilterError(502, "The response is too large to be rewritten (--rewrite-max-bytes).")
            self.parts.append(c)

    def finish(self) -> bytes:
        """Run the callables; the response to send."""
        response, keep = self._parse_head()
        response.body = b"".join(self.parts)
        self.parts = []
        orig = copy.deepcopy(response)
        try:
            for fn in self.rewriters:
                call_with_declared(fn, dict(self.info, response=response, orig_response=orig))
            body = response.body if isinstance(response.body, bytes) else str(response.body).encode("utf-8")
            lines = [header_line(k.encode("latin-1"), str(v).encode("latin-1"))
                     for k, v in response.headers.items() if k.lower() not in _FRAMING]
            first = status_line(int(response.code), str(response.reason or "").encode("latin-1"))
        except Exception:  # noqa: BLE001 - the operator's callable
            log.failure("rewrite_response failed")
            raise FilterError(502, "The server's rewrite_response failed.") from None
        lines += keep
        lines.append(b"Content-Length: %d" % len(body))
        return head_bytes(first, lines) + body

    def _parse_head(self) -> tuple[RewritableResponse, list[bytes]]:
        """The held head as a ``RewritableResponse``, and the ``Connection`` line
        the front chose (it decides keep-alive, not the callables)."""
        lines = self.head.split(b"\r\n")
        _version, _, rest = lines[0].partition(b" ")
        code_b, _, reason_b = rest.partition(b" ")
        pairs, keep = [], []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(b":")
            key = name.strip().decode("latin-1")
            if key.lower() in _FRAMING:
                if key.lower() == "connection":
                    keep.append(line)
                continue
            pairs.append((key, value.strip().decode("latin-1")))
        return RewritableResponse(int(code_b), reason_b.decode("latin-1"), Headers(pairs), b""), keep


def make_rewriter(spec, req, host: str, port: int, path: bytes, max_bytes: int):
    """A factory of fresh ``RewriteBuffer``s for one forwarded request (``Forward.rewrite``)."""
    info = {"request": RequestView.from_head(req), "host": host, "port": port, "path": path.decode("latin-1")}
    return lambda: RewriteBuffer(spec.rewrite_response, info, max_bytes)
