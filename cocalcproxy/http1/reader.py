"""Incremental readers: bytes in, events out, one reader per direction.

``RequestReader`` reads what a client sends; ``ResponseReader`` reads what a
backend answers.  Both follow the same pull API (h11's, adjusted for a proxy):

    reader.receive(data)          # bytes from the socket
    reader.receive_eof()          # the peer closed its sending side
    ev = reader.next_event()      # until NEED_DATA / PAUSED

Events are: a ``RequestHead``/``ResponseHead``; a ``bytes`` span of the body,
exactly as received (chunk framing included) so it can be forwarded untouched;
``END`` when the message is complete; ``CLOSED`` when the peer closed cleanly
between messages.  After ``END`` a reader returns ``PAUSED`` until
``start_next()`` is called: that is how pipelined requests stay in the buffer,
unread, until the current response is finished.

A response reader must be told the request it answers (``expect``): HEAD,
1xx, 204 and 304 responses have no body; a 101 answer to an upgrade request
turns the reader into ``TUNNEL`` state, and ``trailing()`` returns the bytes that
already belong to the tunnel.
"""

from __future__ import annotations

import enum
import re

from .body import ChunkedReader
from .errors import BadRequest, BadResponse, HeadTooLarge, IncompleteMessage, UriTooLong
from .head import parse_request_head, parse_response_head


_LEADING_CRLFS = re.compile(rb"(?:\r\n)*")
_TOKEN_BYTES = frozenset(b"!#$%&'*+.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")


class Event(enum.Enum):
    NEED_DATA = "need data"
    PAUSED = "paused"
    END = "end of message"
    CLOSED = "connection closed"


NEED_DATA = Event.NEED_DATA
PAUSED = Event.PAUSED
END = Event.END
CLOSED = Event.CLOSED


class State(enum.Enum):
    HEAD = "head"
    BODY_LENGTH = "body (Content-Length)"
    BODY_CHUNKED = "body (chunked)"
    BODY_UNTIL_CLOSE = "body (until close)"
    DONE = "done"
    TUNNEL = "tunnel"
    CLOSED = "closed"


HEAD = State.HEAD
BODY_LENGTH = State.BODY_LENGTH
BODY_CHUNKED = State.BODY_CHUNKED
BODY_UNTIL_CLOSE = State.BODY_UNTIL_CLOSE
DONE = State.DONE
TUNNEL = State.TUNNEL
STATE_CLOSED = State.CLOSED


class _Reader:
    __slots__ = ("buf", "state", "remaining", "chunked", "eof", "max_head", "max_chunk_line", "scan", "decode", "reported_end")

    error: type = BadRequest

    def __init__(self, max_head: int = 65536, max_chunk_line: int = 4096) -> None:
        self.buf = b""
        self.state = HEAD
        self.remaining = 0
        self.chunked: ChunkedReader | None = None
        self.eof = False
        self.max_head = max_head
        self.max_chunk_line = max_chunk_line
        self.scan = 0  # where the search for the end of the head resumes
        self.decode = False
        self.reported_end = True

    def receive(self, data: bytes) -> None:
        if self.buf:
            self.buf += data
        else:
            self.buf = data

    def receive_eof(self) -> None:
        self.eof = True

    @property
    def buffered(self) -> int:
        return len(self.buf)

    def trailing(self) -> bytes:
        """Bytes received beyond the current message (after a tunnel switch)."""
        data, self.buf = self.buf, b""
        return data

    def start_next(self) -> None:
        """Begin reading the next message (after END)."""
        self.state = HEAD
        self.scan = 0

    def _find_head(self) -> bytes | None:
        """Return the head (without the empty line) and drop it from the buffer, or None."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n", self.scan)
        if end < 0:
            self._check_partial_head(buf)
            self.scan = max(0, len(buf) - 3)
            return None
        if end + 4 > self.max_head:
            raise self._too_large()
        head = buf[: end + 2]
        self.buf = buf[end + 4 :]
        self.scan = 0
        return head

    def _check_partial_head(self, buf: bytes) -> None:
        # Only the bytes new since the last call are searched: a client dripping a
        # head one byte at a time costs linear, not quadratic, work.
        if len(buf) > self.max_head:
            raise self._too_large()
        if buf.find(b"\n\n", self.scan) >= 0 or buf.find(b"\n\r\n", self.scan) >= 0:
            raise self.error(self._crlf_message)

    _crlf_message = "header lines must end with CRLF"

    def _too_large(self) -> Exception:
        return HeadTooLarge("request head too large")

    def _body_event(self):
        """One body event for the current framing (states BODY_*)."""
        state = self.state
        buf = self.buf
        if state is BODY_LENGTH:
            if not buf:
                if self.eof:
                    raise IncompleteMessage("connection closed in the middle of a body")
                return NEED_DATA
            n = self.remaining
            if len(buf) <= n:
                self.buf = b""
                self.remaining = n - len(buf)
                if self.remaining == 0:
                    self.state = DONE
                return buf
            self.buf = buf[n:]
            self.remaining = 0
            self.state = DONE
            return buf[:n]
        if state is BODY_CHUNKED:
            reader = self.chunked
            if not buf:
                if self.eof:
                    raise IncompleteMessage("connection closed in the middle of a chunked body")
                return NEED_DATA
            pos = reader.feed(buf, 0)
            if reader.done:
                self.state = DONE
            if pos == 0:
                if self.eof:
                    raise IncompleteMessage("connection closed in the middle of a chunked body")
                return NEED_DATA
            self.buf = buf[pos:]
            if self.decode:
                return b"".join(reader.take_payload())
            return buf[:pos] if pos < len(buf) else buf
        # BODY_UNTIL_CLOSE
        if buf:
            self.buf = b""
            return buf
        if self.eof:
            self.state = DONE
            self.reported_end = True
            return END
        return NEED_DATA

    def _done_event(self):
        if not self.reported_end:
            self.reported_end = True
            return END
        return PAUSED


class RequestReader(_Reader):
    """Reads requests from a client connection."""

    __slots__ = ("max_request_line",)
    error = BadRequest

    def __init__(self, max_head: int = 65536, max_request_line: int = 8192, max_chunk_line: int = 4096) -> None:
        super().__init__(max_head, max_chunk_line)
        self.max_request_line = max_request_line

    def _check_partial_head(self, buf: bytes) -> None:
        # Fail fast on bytes that cannot start a request (a TLS ClientHello on a
        # plain listener, say) instead of waiting for the header timeout.
        # (A lone CR may be the start of an empty line that is ignored.)
        if buf[0] not in _TOKEN_BYTES and buf != b"\r":
            raise BadRequest("malformed request line")
        # SPEC §3: the request line is checked first (414), then the whole head (431).
        if len(buf) > self.max_request_line:
            self._check_request_line(buf)
        elif len(buf) > self.max_head and b"\r\n" not in buf:
            return  # a head limit under 8 KiB: the line's length still decides 414 or 431
        super()._check_partial_head(buf)

    def _check_request_line(self, buf: bytes) -> None:
        """414 once the request line is known to be longer than the limit (a final
        CR may still be the start of the CRLF that ends a line of exactly the limit)."""
        window = buf[: self.max_request_line + 2]
        if len(window) - window.endswith(b"\r") > self.max_request_line and b"\r\n" not in window:
            raise UriTooLong("request line too long")

    def _too_large(self) -> Exception:
        self._check_request_line(self.buf)
        return HeadTooLarge("request head too large")

    def next_event(self):
        state = self.state
        if state is HEAD:
            buf = self.buf
            if buf[:2] == b"\r\n":
                # RFC 9112 §2.2: ignore empty lines before a request line (whole
                # CRLFs only, so the result does not depend on how bytes arrive).
                self.buf = buf = buf[_LEADING_CRLFS.match(buf).end() :]
                self.scan = 0
            if not buf:
                if self.eof:
                    self.state = STATE_CLOSED
                    return CLOSED
                return NEED_DATA
            head = self._find_head()
            if head is None:
                if self.eof:
                    raise IncompleteMessage("connection closed in the middle of a request head")
                return NEED_DATA
            req = parse_request_head(head, self.max_request_line)
            self.reported_end = False
            if req.chunked:
                self.chunked = ChunkedReader(self.max_chunk_line, self.max_head, error=BadRequest)
                self.state = BODY_CHUNKED
            elif req.content_length:
                self.remaining = req.content_length
                self.state = BODY_LENGTH
            else:
                self.state = DONE
            return req
        if state is DONE:
            return self._done_event()
        if state is STATE_CLOSED or state is TUNNEL:
            return PAUSED
        return self._body_event()


class ResponseReader(_Reader):
    """Reads responses from a backend connection; ``expect()`` before each response."""

    __slots__ = ("head_request", "upgrade_request")
    error = BadResponse

    def __init__(self, max_head: int = 65536, max_chunk_line: int = 4096) -> None:
        super().__init__(max_head, max_chunk_line)
        self.head_request = False
        self.upgrade_request = False

    _crlf_message = "malformed response head from backend"

    def _too_large(self) -> Exception:
        return BadResponse("response head from backend too large")

    def expect(self, head_request: bool, upgrade_request: bool, decode_chunked: bool = False) -> None:
        """Prepare for the response to a request (HEAD? upgrade? HTTP/1.0 client?)."""
        self.head_request = head_request
        self.upgrade_request = upgrade_request
        self.decode = decode_chunked
        self.state = HEAD
        self.scan = 0
        self.reported_end = False

    def next_event(self):
        state = self.state
        if state is HEAD:
            if not self.buf:
                if self.eof:
                    self.state = STATE_CLOSED
                    return CLOSED
                return NEED_DATA
            head = self._find_head()
            if head is None:
                if self.eof:
                    raise IncompleteMessage("backend closed in the middle of a response head", 502)
                return NEED_DATA
            resp = parse_response_head(head)
            status = resp.status
            if status < 200:
                if status == 101:
                    if not self.upgrade_request:
                        raise BadResponse("101 from backend to a request that did not upgrade")
                    self.state = TUNNEL
                # other 1xx: stay in HEAD, the final response follows
                return resp
            if self.head_request or status == 204 or status == 304:
                self.state = DONE
            elif resp.chunked:
                self.chunked = ChunkedReader(self.max_chunk_line, self.max_head, decode=self.decode, error=BadResponse)
                self.state = BODY_CHUNKED
            elif resp.transfer_encoding:
                self.state = BODY_UNTIL_CLOSE  # RFC 9112 §6.3: TE without chunked last
            elif resp.content_length is not None:
                if resp.content_length:
                    self.remaining = resp.content_length
                    self.state = BODY_LENGTH
                else:
                    self.state = DONE
            else:
                self.state = BODY_UNTIL_CLOSE
            return resp
        if state is DONE:
            return self._done_event()
        if state is TUNNEL or state is STATE_CLOSED:
            return PAUSED
        try:
            return self._body_event()
        except IncompleteMessage as e:
            raise IncompleteMessage(e.message, 502) from None
