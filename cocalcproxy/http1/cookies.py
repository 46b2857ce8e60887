"""The ``Cookie`` request header (RFC 6265 §5.4): read one cookie, take some out.

Values are kept byte for byte; nothing is decoded.  A cookie string is
``name=value`` pairs separated by ``;`` and optional spaces; a pair without
``=`` (some clients send them) is kept as it is when removing others.
"""

from __future__ import annotations

from collections.abc import Iterable


def _pairs(value: bytes):
    for part in value.split(b";"):
        piece = part.strip(b" \t")
        if piece:
            name, eq, val = piece.partition(b"=")
            yield name.strip(b" \t"), (val.strip(b" \t") if eq else None), piece


def cookie_values(headers: Iterable[bytes], name: bytes) -> list[bytes]:
    """Every value of cookie ``name`` in these ``Cookie`` header values, in order."""
    return [val for value in headers for n, val, _ in _pairs(value) if n == name and val is not None]


def without_cookies(value: bytes, names: frozenset[bytes]) -> bytes:
    """``value`` with the cookies called ``names`` removed (``b""`` if none is left)."""
    return b"; ".join(piece for n, _, piece in _pairs(value) if n not in names)


__all__ = ["cookie_values", "without_cookies"]
