"""Request-target helpers: split without decoding, and the path-safety rules of SPEC §3.

Nothing here percent-decodes a path that is forwarded: the backend gets the
bytes the client sent.  Decoding happens only to *recognise* dangerous
segments (``%2e%2E`` is ``..``), never to rewrite them.
"""

from __future__ import annotations

import re

from .addresses import parse_port  # noqa: F401 - routes parse URL ports here
from .types import Reject


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """``(path, query_with_question_mark)``; the query part is ``b""`` when absent
    and ``b"?"`` + bytes when present (even empty), so joining is exact."""
    i = target.find(b"?")
    if i < 0:
        return target, b""
    return target[:i], target[i:]


#: A whole segment that is ``.`` or ``..``, each dot raw or ``%2e``/``%2E``.  An
#: encoded slash also counts as a segment boundary here, so ``..%2f`` (which a
#: backend that decodes ``%2f`` would see as ``../``) is caught too.
_DOT_SEGMENT = re.compile(rb"(?:^|/|%2[fF])(?:\.|%2[eE])(?:\.|%2[eE])?(?=/|%2[fF]|$)")


def has_dot_segment(path: bytes) -> bool:
    """True if any segment is ``.`` or ``..``, raw or with ``%2e`` for a dot
    (segments split at ``/`` and at ``%2f``)."""
    return _DOT_SEGMENT.search(path) is not None


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
