"""One request and its response, as the client connection carries them.

The front (``front.py``) owns the connection and its transports; an
``Exchange`` holds everything that belongs to one request — the parsed head,
the route, the head sent to the backend, the backend borrowed for it and how
far both messages have got — and is dropped whole when the exchange ends, so
nothing of it can leak into the next request on the connection.

The decisions here are pure: whether the client connection stays open after
a response, which head the client gets, whether the backend may be pooled.
``ResponseFilter`` is the interface through which a response is held back and
edited (a named server's ``rewrite_response``): the front drives it and never
lets it touch a transport.
"""

from __future__ import annotations

from typing import Protocol

from ..http1.head import RequestHead, ResponseHead
from ..routing.headers import response_head_bytes
from ..routing.types import Forward


class FilterError(Exception):
    """A response filter cannot produce the response; the client gets ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ResponseFilter(Protocol):
    """Holds one whole response back and returns it edited."""

    def start(self, head: bytes) -> None:
        """The head the client would have got (framing headers not yet final)."""

    def feed(self, chunks: list[bytes]) -> None:
        """Body bytes (decoded from chunked); raises ``FilterError`` when too large."""

    def finish(self) -> bytes:
        """The complete response to send; raises ``FilterError`` if it cannot."""


class Exchange:
    """Per-request state of one client connection (see the module docstring)."""

    __slots__ = (
        "req", "route", "out_head", "backend", "keep_alive", "request_done", "response_started",
        "backend_keep", "reused", "retried", "feeding_backend", "filter",
    )

    def __init__(self, req: RequestHead) -> None:
        self.req = req
        self.route: Forward | None = None
        self.out_head = b""
        self.backend = None  # the HttpBack this exchange borrowed
        self.keep_alive = req.keep_alive  # the client connection stays open after the response
        self.request_done = not req.has_body
        self.response_started = False  # response bytes went to the client
        self.backend_keep = False  # the backend connection may be reused
        self.reused = False  # the backend came from the pool
        self.retried = False  # a stale pooled connection was replaced once already
        self.feeding_backend = False  # the client's gate is the backend transport's producer
        self.filter: ResponseFilter | None = None

    @property
    def head_request(self) -> bool:
        return self.req.method == b"HEAD"

    def decode_chunked(self) -> bool:
        """HTTP/1.0 clients cannot read chunks, and filters edit the payload."""
        return not self.req.is_11 or self.route.rewrite is not None

    def final_head(self, resp: ResponseHead, until_close: bool) -> bytes:
        """The head of the final response for the client, deciding keep-alive
        on the way.  Starts the response filter if the route has one."""
        req = self.req
        has_body = not self.head_request and resp.status not in (204, 304)
        reframe = resp.chunked and not req.is_11 and has_body
        if reframe or until_close or not self.request_done:
            self.keep_alive = False  # the body ends with the connection, or the request never ended
        self.backend_keep = resp.keep_alive and not until_close and req.is_11
        route = self.route
        if route.rewrite is not None and has_body:
            self.filter = route.rewrite()
            reframe = True
        else:
            self.response_started = True
        return response_head_bytes(resp, keep_alive=self.keep_alive, client_is_11=req.is_11, reframe=reframe,
                                   context_path=route.context_path)

    def interim_head(self, resp: ResponseHead) -> bytes | None:
        """A 1xx (not 101) for an HTTP/1.1 client; HTTP/1.0 clients never see one."""
        if not self.req.is_11:
            return None
        return response_head_bytes(resp, keep_alive=True, client_is_11=True, reframe=False, context_path=None)

    @staticmethod
    def upgrade_head(resp: ResponseHead) -> bytes:
        return response_head_bytes(resp, keep_alive=True, client_is_11=True, reframe=False, context_path=None,
                                   upgrade=True)

    def reusable(self, backend) -> bool:
        """May the backend serve another request?  Bytes beyond the end of the
        response belong to no request: such a backend is never reused (they
        would reach the next client as its answer)."""
        return (self.backend_keep and self.request_done and backend.alive and not backend.read_closed
                and not backend.reader.buffered)


def answer_options(req: RequestHead | None, close: bool, draining: bool) -> dict:
    """How to frame an answer the proxy makes itself for ``req``."""
    if req is None:
        return {"close": True}
    close = close or not req.keep_alive or draining
    return {"close": close, "keep_alive_10": not close and not req.is_11, "head_only": req.method == b"HEAD"}


__all__ = ["Exchange", "FilterError", "ResponseFilter", "answer_options"]
