"""A fake process reactor and readiness prober for ``SupervisedServer`` tests
(procmon's ``DummyProcessReactor`` pattern): no real processes, no sockets.

``ProcessReactor.spawnProcess`` records its arguments and connects the process
protocol to a ``FakeProcess``; ``end`` delivers ``processEnded``.
``FakeProber.wait_ready`` hands each readiness wait to the test, which answers
it (``callback``/``errback``); a process that ends first fails it with
``ProcessGone`` as the real prober does.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from cocalcproxy.supervise.readiness import ProcessGone


class FakeProcess:
    def __init__(self, proto, pid):
        self.proto = proto
        self.pid = pid
        self.signals: list = []

    def signalProcess(self, sig):
        self.signals.append(sig)

    def closeStdin(self):
        pass


class ProcessReactor(MemoryReactorClock):
    def __init__(self):
        super().__init__()
        self.spawned = []  # (protocol, executable, args, env, FakeProcess)

    def spawnProcess(self, proto, executable, args, env=None, path=None, **kw):
        proc = FakeProcess(proto, 1000 + len(self.spawned))
        self.spawned.append((proto, executable, args, env, proc))
        proto.makeConnection(proc)
        return proc


class FakeProber:
    def __init__(self):
        self.calls = []  # (keyword arguments, Deferred) of each wait_ready
        self.port_checks = []  # (port, Deferred) — answered by the test, or False at once
        self.hold_port_checks = False

    def accepting(self, *, host, port):
        assert host == "localhost"
        if not self.hold_port_checks:
            return defer.succeed(False)
        d = defer.Deferred()
        self.port_checks.append((port, d))
        return d

    def wait_ready(self, **kw):
        d = defer.Deferred()
        self.calls.append((kw, d))
        kw["ended"].addCallback(lambda _: d.called or d.errback(ProcessGone()))
        return d


def end(reactor: ProcessReactor, index: int = -1, code: int = 0, sig: int | None = None) -> None:
    """The ``index``-th spawned process ends (exit ``code``, or killed by ``sig``)."""
    proto = reactor.spawned[index][0]
    reason = ProcessDone(0) if code == 0 and sig is None else ProcessTerminated(code, sig)
    proto.processEnded(Failure(reason))
