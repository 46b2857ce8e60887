"""TCP transports that send at once when nothing is queued.

Twisted's ``FileDescriptor.write`` always queues: the bytes wait for the next
reactor iteration, which costs an ``epoll_ctl`` to watch for writability, a
trip through ``epoll_wait`` and another ``epoll_ctl`` to stop watching — for
every small write.  A proxy writes once per hop per message, so that is most of
its per-request system-call count and much of its latency.

These subclasses try ``send()`` first when the transport's buffer is empty and
fall back to Twisted's queue for whatever the kernel did not take.  Ordering is
preserved (we only bypass an *empty* queue), and every other behaviour —
producers, half-close, TLS layered on top, ``loseConnection`` — is Twisted's.
They also read up to ``readSize`` bytes per ``recv``, independent of the write
buffer threshold ``bufferSize``.

If Twisted's private buffer attributes ever change, ``_SUPPORTED`` turns false
and the classes behave exactly like Twisted's own.
"""

from __future__ import annotations

import errno
import socket

from twisted.internet import defer, tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.python.runtime import platformType
from zope.interface import implementer

_SUPPORTED = all(hasattr(FileDescriptor, name) for name in ("dataBuffer", "offset", "SEND_LIMIT")) and hasattr(
    FileDescriptor(reactor=object()), "_tempDataLen"  # type: ignore[arg-type]
)

#: recv() size: bigger reads mean fewer Python-level events for bulk bodies.
READ_SIZE = 256 * 1024


class _WriteThrough:
    """Mixin for ``tcp.Connection`` subclasses (see module docstring)."""

    readSize = READ_SIZE

    def write(self, data: bytes) -> None:
        if (
            _SUPPORTED
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
            and self.connected
            and not self._writeDisconnecting
            and not self._writeDisconnected
            and type(data) is bytes
            # A pull producer (streaming=False, e.g. FileSender) is asked for more
            # only from doWrite, which runs only for queued bytes: let it queue.
            and (self.producer is None or self.streamingProducer)
        ):
            try:
                sent = self.socket.send(data)
            except OSError:
                # Would block, or a real error: either way queue the bytes; a real
                # error is then found by doWrite and reported as a lost connection
                # through Twisted's usual path.
                sent = 0
            if sent == len(data):
                return
            if sent:
                data = data[sent:]
        super().write(data)  # type: ignore[misc]

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def doRead(self):
        try:
            data = self.socket.recv(self.readSize)
        except OSError as se:
            if se.args[0] == errno.EWOULDBLOCK:
                return None
            from twisted.internet import main

            return main.CONNECTION_LOST
        return self._dataReceived(data)


class FastServer(_WriteThrough, tcp.Server):
    pass


class FastClient(_WriteThrough, tcp.Client):
    pass


class FastPort(tcp.Port):
    transport = FastServer


class FastConnector(tcp.Connector):
    def _makeTransport(self) -> FastClient:
        return FastClient(self.host, self.port, self.bindAddress, self, self.reactor)


def connect_tcp(reactor, host: str, port: int, factory, timeout: float) -> FastConnector:
    """``reactor.connectTCP`` with a write-through transport."""
    connector = FastConnector(host, port, factory, timeout, None, reactor)
    connector.connect()
    return connector


@implementer(IStreamServerEndpoint)
class FastTCPServerEndpoint:
    """A TCP (v4 or v6) server endpoint whose connections use ``FastServer``."""

    def __init__(self, reactor, port: int, backlog: int = 50, interface: str = "", reuse_port: bool = False) -> None:
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface
        self._reuse_port = reuse_port

    def listen(self, factory):
        def start():
            p = FastPort(self._port, factory, self._backlog, self._interface, self._reactor)
            if self._reuse_port and platformType == "posix":
                p._reusePort = True
            p.startListening()
            return p

        return defer.execute(start)


def set_nodelay(transport) -> None:
    """Small writes must not wait for Nagle: every write here is a whole message part."""
    try:
        transport.setTcpNoDelay(True)
    except (AttributeError, OSError, socket.error):
        pass
