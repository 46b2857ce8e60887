"""Files from a directory: the bridge's ``--web DIR`` (e.g. noVNC).

Safety: the request path has already passed the dot-segment check of
``routing.paths`` (``..``, ``%2e%2e`` and ``..%2f`` are rejected with 400), so
the path joined under the root cannot climb out of it lexically.  Percent-escapes
are decoded for the file-system lookup only; a NUL, a backslash or a segment
starting with ``.`` (dotfiles such as ``.git``) is never served.  Symbolic links
inside the root are followed, as web servers do by default: the operator
decides what the directory holds (Debian's noVNC links into /usr/share/javascript).

Small files are answered from memory through the front's ``Local`` route (so
keep-alive works for pages that load dozens of scripts); larger ones are
streamed by ``net.filestream`` on a connection that then closes.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from ...proxy import pages

#: Files up to this size are answered from memory; larger ones are streamed.
MEMORY_LIMIT = 1024 * 1024

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".wasm": "application/wasm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".pdf": "application/pdf",
    ".oga": "audio/ogg",
    ".mp3": "audio/mpeg",
}


def content_type(name: str) -> bytes:
    ext = os.path.splitext(name)[1].lower()
    ctype = _TYPES.get(ext)
    if ctype is None:
        guessed, _ = mimetypes.guess_type(name, strict=False)
        ctype = guessed or "application/octet-stream"
    return ctype.encode("ascii")


@dataclass(frozen=True, slots=True)
class FileFound:
    path: str
    size: int
    ctype: bytes


@dataclass(frozen=True, slots=True)
class NeedsSlash:
    """A directory asked for without its trailing slash."""


class WebRoot:
    """Maps request paths (relative to the route base) to files under ``directory``."""

    def __init__(self, directory: str, index: str = "index.html") -> None:
        self.directory = os.path.abspath(directory)
        self.index = index

    def resolve(self, rel: bytes) -> FileFound | NeedsSlash | None:
        """``rel`` is the raw path after the base (no leading slash); None → 404."""
        try:
            decoded = unquote_to_bytes(rel).decode("utf-8")
        except UnicodeDecodeError:
            return None
        if "\0" in decoded or "\\" in decoded:
            return None
        segments = decoded.split("/")
        if any(s.startswith(".") for s in segments if s):
            return None
        path = os.path.join(self.directory, *[s for s in segments if s])
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        if stat.S_ISDIR(st.st_mode):
            if decoded and not decoded.endswith("/"):
                return NeedsSlash()
            path = os.path.join(path, self.index)
            try:
                st = os.stat(path)
            except OSError:
                return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return FileFound(path, st.st_size, content_type(path))


def read_small(path: str) -> tuple[int, bytes, bytes]:
    """``(status, body, content type)`` of a small file, for the front's ``Local`` answers."""
    try:
        with open(path, "rb") as f:
            body = f.read(MEMORY_LIMIT + 1)
    except OSError:
        body = None
    if body is None or len(body) > MEMORY_LIMIT:  # vanished, unreadable or grew meanwhile
        err, ctype = pages.error_body(404, "No such file.", False)
        return 404, err, ctype
    return 200, body, content_type(path)
