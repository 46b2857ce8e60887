"""Request-target helpers: split without decoding, and the path-safety rules of SPEC §3.

Nothing here percent-decodes a path that is forwarded: the backend gets the
bytes the client sent.  Decoding happens only to *recognise* dangerous
segments (``%2e%2E`` is ``..``), never to rewrite them.
"""

from __future__ import annotations

from .types import Reject

_DOT_SEGMENTS = (b".", b"..")


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """``(path, query_with_question_mark)``; the query part is ``b""`` when absent
    and ``b"?"`` + bytes when present (even empty), so joining is exact."""
    i = target.find(b"?")
    if i < 0:
        return target, b""
    return target[:i], target[i:]


def has_dot_segment(path: bytes) -> bool:
    """True if any segment is ``.`` or ``..``, raw or with ``%2e`` for a dot."""
    if b"." not in path and b"%" not in path:
        return False
    for seg in path.split(b"/"):
        if not seg or len(seg) > 6:
            continue
        if b"%" in seg:
            seg = seg.replace(b"%2e", b".").replace(b"%2E", b".")
        if seg in _DOT_SEGMENTS:
            return True
    return False


def has_encoded_slash(segment: bytes) -> bool:
    return b"%" in segment and (b"%2f" in segment or b"%2F" in segment)


def normalize_base_url(base: str) -> str:
    """Always start and end with ``/`` (SPEC §2); collapse repeated slashes."""
    parts = [p for p in base.split("/") if p]
    return "/" + "".join(p + "/" for p in parts)


def check_path(path: bytes) -> Reject | None:
    """The checks every role applies before routing (SPEC §3)."""
    if path[:1] != b"/":
        return Reject(400, "The request target must be an absolute path.")
    if has_dot_segment(path):
        return Reject(400, "Paths with . or .. segments are not allowed.")
    return None


def parse_port(segment: bytes) -> int | None:
    """A decimal port 1–65535, or None."""
    if not segment.isdigit() or len(segment) > 5:
        return None
    port = int(segment)
    if 1 <= port <= 65535:
        return port
    return None
