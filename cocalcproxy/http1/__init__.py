"""Sans-IO HTTP/1.1 for a proxy: heads parsed with their raw bytes kept, bodies framed
as raw spans.  Standard library only; never imports Twisted (see tests/unit/test_layers.py)."""

from .errors import (
    BadRequest,
    BadResponse,
    HeadTooLarge,
    IncompleteMessage,
    NotImplementedCoding,
    ProtocolError,
    UriTooLong,
    VersionNotSupported,
)
from .head import RequestHead, ResponseHead, parse_request_head, parse_response_head
from .reader import CLOSED, END, NEED_DATA, PAUSED, RequestReader, ResponseReader, State

__all__ = [
    "BadRequest",
    "BadResponse",
    "CLOSED",
    "END",
    "HeadTooLarge",
    "IncompleteMessage",
    "NEED_DATA",
    "NotImplementedCoding",
    "PAUSED",
    "ProtocolError",
    "RequestHead",
    "RequestReader",
    "ResponseHead",
    "ResponseReader",
    "State",
    "UriTooLong",
    "VersionNotSupported",
    "parse_request_head",
    "parse_response_head",
]
