"""Protocol errors raised by the sans-IO HTTP/1.1 core.

Every error carries the HTTP status the proxy answers with (SPEC §3), so the
Twisted layer never has to guess.  Messages are short, fixed English text that
may appear in an error page; they never contain request bytes.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A peer broke HTTP/1.1 framing or one of our limits."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ProtocolError):
    status = 400


class UriTooLong(ProtocolError):
    status = 414


class HeadTooLarge(ProtocolError):
    status = 431


class NotImplementedCoding(ProtocolError):
    status = 501


class VersionNotSupported(ProtocolError):
    status = 505


class BadResponse(ProtocolError):
    """The backend sent something that is not valid HTTP/1.x: the client gets 502."""

    status = 502


class IncompleteMessage(ProtocolError):
    """The peer closed the connection in the middle of a message."""

    status = 400
