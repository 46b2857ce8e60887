"""Streaming a file to a client connection with backpressure, then closing it.

Used for large ``--web`` files of the bridge role: the front hands the
connection over (``Handoff``) and ``stream_file``'s starter writes the head the
caller made, then the file in 64 KiB pieces as a *push* producer (our
write-through transports never ask a pull producer such as ``FileSender`` for
more once the kernel took a whole chunk).  At most ``TURN`` bytes are read per
reactor turn, so one download cannot hold the reactor while the socket keeps
accepting.  What the client still sends is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from .gate import unregister


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


@implementer(IPushProducer)
class FileStreamer:
    """Writes an open file to a transport as its streaming producer, then closes."""

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


def stream_file(clock, path: str, head: Callable[[int], bytes], head_only: bool, missing: bytes):
    """A ``Handoff`` start that writes ``head(size)`` and the file at ``path``
    with backpressure, then closes; ``missing`` (a whole response) if the file
    cannot be opened any more."""

    def start(transport, raw):
        proto = _Finished()
        try:
            f = open(path, "rb")
        except OSError:
            transport.write(missing)
            transport.loseConnection()
            return proto
        size = os.fstat(f.fileno()).st_size
        transport.write(head(size))
        if head_only:
            f.close()
            transport.loseConnection()
            return proto
        proto.streamer = FileStreamer(clock, f, transport, size)
        proto.streamer.start()
        return proto

    return start


__all__ = ["FileStreamer", "stream_file"]
