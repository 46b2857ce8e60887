"""WebSocket frame bytes the bridge writes itself, and base64 decoding across frames.

Pure (no Autobahn, no Twisted): server frames are unmasked and we never
compress, so a frame is a two- to ten-byte header and the payload.  Writing a
message as one ``bytes`` saves Autobahn's ``sendMessage`` two copies and a
write per frame.
"""

from __future__ import annotations

import base64
import binascii
import struct

#: Outgoing messages are cut into frames of this size.
FRAGMENT_SIZE = 64 * 1024

OP_TEXT = 1
OP_BINARY = 2

_HEAD_SHORT = struct.Struct("!BB").pack
_HEAD_16 = struct.Struct("!BBH").pack
_HEAD_64 = struct.Struct("!BBQ").pack


def frame_header(b0: int, n: int) -> bytes:
    """An unmasked frame header: FIN/opcode byte ``b0``, payload length ``n``."""
    if n < 126:
        return _HEAD_SHORT(b0, n)
    if n < 65536:
        return _HEAD_16(b0, 126, n)
    return _HEAD_64(b0, 127, n)


def message_bytes(data: bytes, opcode: int, fragment: int = FRAGMENT_SIZE) -> bytes:
    """One message as frames of at most ``fragment`` payload bytes."""
    n = len(data)
    if n <= fragment:
        return frame_header(0x80 | opcode, n) + data
    view = memoryview(data)
    parts = []
    for start in range(0, n, fragment):
        chunk = view[start:start + fragment]
        fin = 0x80 if start + fragment >= n else 0
        parts.append(frame_header(fin | (opcode if start == 0 else 0), len(chunk)))
        parts.append(chunk)
    return b"".join(parts)


class Base64Decoder:
    """Decodes base64 text that may be split anywhere between frames (websockify's
    ``base64`` subprotocol).  ``feed`` raises ``ValueError`` on invalid input."""

    __slots__ = ("rest",)

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        data = self.rest + chunk
        cut = len(data) if final else len(data) - len(data) % 4
        self.rest = data[cut:]
        try:
            return base64.b64decode(data[:cut], validate=True)
        except (binascii.Error, ValueError):
            self.rest = b""
            raise ValueError("invalid base64 data") from None


__all__ = ["Base64Decoder", "FRAGMENT_SIZE", "OP_BINARY", "OP_TEXT", "frame_header", "message_bytes"]
