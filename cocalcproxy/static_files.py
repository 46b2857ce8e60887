"""Files from a directory (the bridge's ``--web DIR``, e.g. noVNC), and answers
that end a connection.

Safety: the request path has already passed the dot-segment check of
``routing.paths`` (``..``, ``%2e%2e`` and ``..%2f`` are rejected with 400), so
the path joined under the root cannot climb out of it lexically.  Percent-escapes
are decoded for the file-system lookup only; a NUL, a backslash or a segment
starting with ``.`` (dotfiles such as ``.git``) is never served.  Symbolic links
inside the root are followed, as web servers do by default: the operator
decides what the directory holds (Debian's noVNC links into /usr/share/javascript).

Small files are answered from memory through the front's ``Local`` route (so
keep-alive works for pages that load dozens of scripts); larger ones are
streamed with a producer on a connection that then closes.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from .net.gate import unregister
from .proxy import errors as pages

log = Logger()

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


class _Finished(Protocol):
    """Owns a connection that is being answered and closed: ignores further input."""

    def __init__(self) -> None:
        self.streamer = None

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason=None) -> None:
        streamer, self.streamer = self.streamer, None
        if streamer is not None:
            streamer.stopProducing()


def answer_and_close(data: bytes):
    """A ``Handoff`` start that writes ``data`` (a whole response) and closes."""

    def start(transport, raw):
        transport.write(data)
        transport.loseConnection()
        return _Finished()

    return start


@implementer(IPushProducer)
class _FileStreamer:
    """Writes a file to a transport as its streaming producer, then closes.

    A push producer on purpose: our write-through transports never ask a pull
    producer (``FileSender``) for more once the kernel took a whole chunk.
    At most ``TURN`` bytes are read per reactor turn, so one download cannot
    hold the reactor while the socket keeps accepting.
    """

    CHUNK = 64 * 1024
    TURN = 1024 * 1024

    def __init__(self, clock, f, transport, size: int) -> None:
        self.clock = clock
        self.file = f
        self.transport = transport
        self.remaining = size  # what Content-Length promised: a file that grows is cut there
        self.paused = False
        self.call = None

    def start(self) -> None:
        self.transport.registerProducer(self, True)
        self._schedule()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self._finish()

    def _schedule(self) -> None:
        if self.call is None and self.file is not None:
            self.call = self.clock.callLater(0, self._pump)

    def _pump(self) -> None:
        self.call = None
        sent = 0
        while not self.paused and sent < self.TURN and self.file is not None:
            chunk = self.file.read(min(self.CHUNK, self.remaining))
            if not chunk:  # all of it sent, or the file shrank (the client sees a short body)
                self._finish()
                return
            self.transport.write(chunk)
            sent += len(chunk)
            self.remaining -= len(chunk)
        if not self.paused:
            self._schedule()

    def _finish(self) -> None:
        f, self.file = self.file, None
        if f is None:
            return
        f.close()
        if self.call is not None:
            self.call.cancel()
            self.call = None
        unregister(self.transport)
        self.transport.loseConnection()


def stream_file(clock, found: FileFound, head_only: bool):
    """A ``Handoff`` start that streams a large file with backpressure, then closes."""

    def start(transport, raw):
        proto = _Finished()
        try:
            f = open(found.path, "rb")
        except OSError:
            transport.write(pages.error_response(404, "No such file.", close=True, head_only=head_only))
            transport.loseConnection()
            return proto
        size = os.fstat(f.fileno()).st_size
        transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-store\r\n"
            b"Connection: close\r\n\r\n" % (found.ctype, size)
        )
        if head_only:
            f.close()
            transport.loseConnection()
            return proto
        proto.streamer = _FileStreamer(clock, f, transport, size)
        proto.streamer.start()
        return proto

    return start
