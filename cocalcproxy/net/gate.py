"""PauseGate: one transport's reading, paused for any of several reasons.

A transport resumes a producer only if it paused it itself, but a proxy pauses
its client for reasons of its own too (waiting for a backend connection,
holding a pipelined request).  If the consumer's ``resumeProducing`` simply
resumed the socket it would undo our pause.  The gate keeps a bit per reason,
pauses the real transport on the first and resumes it on the last.

The gate is what gets registered as the *other* transport's streaming
producer.  ``stopProducing`` does nothing: connection teardown is the
protocols' job (one place, not two).
"""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

BACKPRESSURE = 1  # the peer's transport buffer is full
CONNECTING = 2  # no backend yet: keep request bytes in the kernel
PIPELINE = 4  # a pipelined request is buffered while the current one is answered
HANDOFF = 8  # waiting for something else (a server process start, a lookup)


@implementer(IPushProducer)
class PauseGate:
    __slots__ = ("transport", "reasons")

    def __init__(self, transport) -> None:
        self.transport = transport
        self.reasons = 0

    def pause(self, reason: int) -> None:
        if not self.reasons:
            self.transport.pauseProducing()
        self.reasons |= reason

    def resume(self, reason: int) -> None:
        if self.reasons & reason:
            self.reasons &= ~reason
            if not self.reasons:
                self.transport.resumeProducing()

    def reset(self) -> None:
        """Drop every reason: the transport reads again (a connection going back
        to the pool, whatever paused it during its last exchange)."""
        if self.reasons:
            self.reasons = 0
            self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        self.pause(BACKPRESSURE)

    def resumeProducing(self) -> None:
        self.resume(BACKPRESSURE)

    def stopProducing(self) -> None:
        pass


def unregister(transport) -> None:
    """``unregisterProducer`` that tolerates "nothing registered".

    Twisted's TCP and TLS transports already do; test transports
    (``StringTransport``) raise ``RuntimeError``.
    """
    try:
        transport.unregisterProducer()
    except RuntimeError:
        pass
