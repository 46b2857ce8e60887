"""Chunked transfer-coding: a validating, incremental reader.

The reader walks chunk framing without copying chunk data and reports how far
it got, so the caller can forward the raw bytes — size lines, extensions, CRLFs
and trailers included — untouched (SPEC §3).  In ``decode`` mode it also hands
back the payload pieces, for re-framing a chunked response to an HTTP/1.0
client, which cannot read chunks.

Rules enforced (each stops a known desync between two parsers):
- chunk-size is 1–16 hex digits; anything else (``0x10``, ``+5``, spaces) → 400;
- a chunk-size line, extensions included, is at most 4 KiB (SPEC §3);
- a bare LF or CR inside a size line or extension → 400;
- chunk data must be followed by exactly CRLF;
- trailer lines are validated like header lines and bounded in size.
"""

from __future__ import annotations

import re

from .errors import ProtocolError

_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
#: Chunk extensions: anything printable (plus HTAB) after the size; CTLs rejected.
_EXT = re.compile(rb"(?:[ \t]*;[\t\x20-\x7e\x80-\xff]*)?")
_TRAILER_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*")

_SIZE_LINE, _DATA, _DATA_CRLF, _TRAILER, _DONE = range(5)


class ChunkedReader:
    """Incremental chunked-body parser.

    ``feed(buf, pos)`` consumes as much of ``buf[pos:]`` as forms complete framing
    elements (chunk data may be partial) and returns the new position.  ``done``
    becomes true once the last chunk and the trailer section are consumed; bytes
    after that belong to the next message and are never consumed.
    """

    __slots__ = ("state", "remaining", "max_line", "max_trailer", "trailer_bytes", "decode", "payload", "error")

    def __init__(self, max_line: int = 4096, max_trailer: int = 65536, decode: bool = False, error=ProtocolError):
        self.state = _SIZE_LINE
        self.remaining = 0
        self.max_line = max_line
        self.max_trailer = max_trailer
        self.trailer_bytes = 0
        self.decode = decode
        self.payload: list[bytes] = []
        self.error = error

    @property
    def done(self) -> bool:
        return self.state == _DONE

    def feed(self, buf: bytes, pos: int) -> int:
        end = len(buf)
        while pos < end:
            state = self.state
            if state == _DATA:
                take = self.remaining
                if take > end - pos:
                    take = end - pos
                if self.decode:
                    self.payload.append(buf[pos : pos + take])
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _DATA_CRLF
                continue
            if state == _SIZE_LINE:
                new = self._size_line(buf, pos)
            elif state == _DATA_CRLF:
                new = self._data_crlf(buf, pos)
            elif state == _TRAILER:
                new = self._trailer_line(buf, pos)
                if self.state == _DONE:
                    return new
            else:  # _DONE
                return pos
            if new == pos:
                return pos  # an incomplete framing element: wait for more bytes
            pos = new
        return pos

    def _size_line(self, buf: bytes, pos: int) -> int:
        """A chunk-size line (with extensions): the position after it, or ``pos``."""
        eol = buf.find(b"\r\n", pos, pos + self.max_line + 2)
        if eol < 0:
            pending = buf[pos : pos + self.max_line + 2]
            if b"\n" in pending or b"\r" in pending[:-1]:
                raise self.error("bare CR or LF in chunk-size line")
            # A final CR may be the start of the CRLF that ends a line of
            # exactly max_line bytes: only count it once its LF is missing.
            if len(pending) - pending.endswith(b"\r") > self.max_line:
                raise self.error("chunk-size line too long")
            return pos
        line = buf[pos:eol]
        semi = line.find(b";")
        size_part = line if semi < 0 else line[:semi].rstrip(b" \t")
        if not _SIZE.fullmatch(size_part):
            raise self.error("invalid chunk size")
        if semi >= 0 and not _EXT.fullmatch(line, len(size_part)):
            raise self.error("invalid chunk extension")
        size = int(size_part, 16)
        if size:
            self.remaining = size
            self.state = _DATA
        else:
            self.state = _TRAILER
        return eol + 2

    def _data_crlf(self, buf: bytes, pos: int) -> int:
        """The CRLF that must follow chunk data."""
        if len(buf) - pos < 2:
            if buf[pos : pos + 1] != b"\r":
                raise self.error("chunk data not followed by CRLF")
            return pos
        if buf[pos : pos + 2] != b"\r\n":
            raise self.error("chunk data not followed by CRLF")
        self.state = _SIZE_LINE
        return pos + 2

    def _trailer_line(self, buf: bytes, pos: int) -> int:
        """One trailer line, or the empty line that ends the body."""
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if self.trailer_bytes + len(buf) - pos > self.max_trailer:
                raise self.error("trailer section too large")
            if b"\n" in buf[pos:] or b"\r" in buf[pos : len(buf) - 1]:
                raise self.error("bare CR or LF in trailer")
            return pos
        line = buf[pos:eol]
        self.trailer_bytes += len(line) + 2
        if self.trailer_bytes > self.max_trailer:
            raise self.error("trailer section too large")
        if not line:
            self.state = _DONE
        elif not _TRAILER_LINE.fullmatch(line):
            raise self.error("malformed trailer line")
        return eol + 2

    def take_payload(self) -> list[bytes]:
        out = self.payload
        self.payload = []
        return out
