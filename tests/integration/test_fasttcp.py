"""Pull producers on write-through transports (a bug found while writing ``static_files``).

``net.fasttcp``'s write-through transports send at once when their buffer is
empty; Twisted resumes a *pull* producer (``streaming=False``, e.g.
``twisted.protocols.basic.FileSender``) only from ``doWrite`` when the buffer
drains — which never happened if the kernel took the whole first chunk, so a
pull producer on a ``FastServer`` transport stalled after its first 16 KiB.
With a pull producer registered, writes now go through Twisted's queue.
"""

from __future__ import annotations

import io

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.protocols.basic import FileSender

from cocalcproxy.net.fasttcp import FastTCPServerEndpoint

SIZE = 200 * 1024


class _SendFile(protocol.Protocol):
    def connectionMade(self):
        FileSender().beginFileTransfer(io.BytesIO(b"x" * SIZE), self.transport).addBoth(
            lambda _: self.transport.loseConnection())


class _Collect(protocol.Protocol):
    def __init__(self):
        self.got = 0
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.got += len(data)

    def connectionLost(self, reason=None):
        self.done.callback(self.got)


@pytest_twisted.ensureDeferred
async def test_pull_producer_on_a_write_through_transport_finishes():
    factory = protocol.Factory.forProtocol(_SendFile)
    port = await FastTCPServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    client = _Collect()
    try:
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            protocol.Factory.forProtocol(lambda: client))
        got = await client.done.addTimeout(2, reactor).addErrback(lambda f: client.got)  # stalled: what came
    finally:
        if client.transport is not None:
            client.transport.abortConnection()
        await port.stopListening()
    assert got == SIZE
