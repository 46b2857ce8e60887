"""An engine behaviour the bridge works around (``static_files._FileStreamer``).

``net.fasttcp``'s write-through transports send at once when their buffer is
empty; Twisted resumes a *pull* producer (``streaming=False``, e.g.
``twisted.protocols.basic.FileSender``) only from ``doWrite`` when the buffer
drains — which never happens if the kernel took the whole first chunk.  So a
pull producer on a ``FastServer`` transport stalls after its first 16 KiB.
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


@pytest.mark.xfail(strict=True, reason="engine bug: fasttcp write-through never resumes a pull producer "
                                       "(FileSender stalls after its first chunk)")
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
