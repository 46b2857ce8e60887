"""``rewrite_response`` (jupyter-server-proxy compatibility): buffer one response,
let the server's callables edit it, send it with a fresh ``Content-Length``.

Only exchanges whose ``Forward.rewrite`` is set come here; the streaming relay
stays untouched for everything else.  The buffer is bounded: beyond
``max_bytes`` the client gets 502 (``--rewrite-max-bytes``).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

from twisted.logger import Logger

log = Logger()


class Headers:
    """A small case-insensitive multi-valued header list (tornado ``HTTPHeaders``-like)."""

    def __init__(self, pairs=()) -> None:
        self._pairs: list[tuple[str, str]] = list(pairs)

    def get_list(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self._pairs if k.lower() == n]

    def get(self, name: str, default=None):
        values = self.get_list(name)
        return ",".join(values) if values else default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value) -> None:
        n = name.lower()
        self._pairs = [(k, v) for k, v in self._pairs if k.lower() != n] + [(name, str(value))]

    def __delitem__(self, name: str) -> None:
        n = name.lower()
        if not any(k.lower() == n for k, _ in self._pairs):
            raise KeyError(name)
        self._pairs = [(k, v) for k, v in self._pairs if k.lower() != n]

    def add(self, name: str, value) -> None:
        self._pairs.append((name, str(value)))

    def __contains__(self, name) -> bool:
        return self.get(name) is not None

    def get_all(self):
        return list(self._pairs)

    def items(self):
        return list(self._pairs)

    def keys(self):
        return [k for k, _ in self._pairs]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._pairs)


class RewritableResponse:
    """What a ``rewrite_response`` callable edits in place: ``code``, ``reason``, ``headers``, ``body``."""

    def __init__(self, code: int, reason: str, headers: Headers, body: bytes) -> None:
        self.code = code
        self.reason = reason
        self.headers = headers
        self.body = body


class TooLarge(Exception):
    pass


class RewriteBuffer:
    def __init__(self, rewriters, call, info: dict, max_bytes: int) -> None:
        self.rewriters = rewriters
        self.call = call  # call_with_declared
        self.info = info
        self.max_bytes = max_bytes
        self.head = b""
        self.parts: list[bytes] = []
        self.size = 0

    def start(self, head: bytes) -> None:
        """The client head the relay would have sent (body framing headers removed)."""
        self.head = head

    def feed(self, chunks: list[bytes]) -> None:
        for c in chunks:
            self.size += len(c)
            if self.size > self.max_bytes:
                raise TooLarge()
            self.parts.append(c)

    def finish(self) -> bytes:
        """Run the callables; the response to send (raises on a failing callable)."""
        lines = self.head.split(b"\r\n")
        status_line = lines[0]
        version, _, rest = status_line.partition(b" ")
        code_b, _, reason_b = rest.partition(b" ")
        pairs, hop = [], []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(b":")
            key = name.strip().decode("latin-1")
            if key.lower() in ("connection", "content-length", "transfer-encoding"):
                hop.append(line)
                continue
            pairs.append((key, value.strip().decode("latin-1")))
        response = RewritableResponse(int(code_b), reason_b.decode("latin-1"), Headers(pairs), b"".join(self.parts))
        self.parts = []
        orig = copy.deepcopy(response)
        for fn in self.rewriters:
            self.call(fn, dict(self.info, response=response, orig_response=orig))
        body = response.body if isinstance(response.body, bytes) else str(response.body).encode("utf-8")
        out = [b"HTTP/1.1 %d %s" % (int(response.code), str(response.reason or "").encode("latin-1"))]
        for k, v in response.headers.items():
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            out.append(k.encode("latin-1") + b": " + str(v).encode("latin-1"))
        out += [ln for ln in hop if ln.lower().startswith(b"connection:")]
        out.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(out) + b"\r\n\r\n" + body


def make_rewriter(spec, req, host: str, port: int, path: bytes, max_bytes: int):
    """A factory of fresh ``RewriteBuffer``s for one forwarded request (``Forward.rewrite``)."""
    from ..supervise.spec import call_with_declared

    headers = Headers((lname.decode("latin-1"), value.decode("latin-1")) for lname, value, _ in req.headers)
    target = req.target.decode("latin-1")
    request = SimpleNamespace(method=req.method.decode("latin-1"), uri=target, path=target.split("?", 1)[0],
                              query=target.partition("?")[2], headers=headers)
    info = {"request": request, "host": host, "port": port, "path": path.decode("latin-1")}
    return lambda: RewriteBuffer(spec.rewrite_response, call_with_declared, info, max_bytes)


def relay(front, chunks: list[bytes], done: bool) -> bool:
    """Buffer ``chunks`` for ``front``'s rewriter; at the end send the rewritten
    response.  False when the response failed (too large, a callable raised)."""
    buf = front.rewriter
    try:
        buf.feed(chunks)
    except TooLarge:
        front.rewriter = None
        front._response_failed(502, "The response is too large to be rewritten (--rewrite-max-bytes).")
        return False
    if not done:
        return True
    front.rewriter = None
    try:
        data = buf.finish()
    except Exception:  # noqa: BLE001 - the operator's callable
        log.failure("rewrite_response failed")
        front._response_failed(502, "The server's rewrite_response failed.")
        return False
    front.resp_head_sent = True
    front.transport.write(data)
    return True
