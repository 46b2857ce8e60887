"""Is a freshly started server answering yet?  The only module that uses treq.

Ready = any valid HTTP response (SPEC §4), or for raw-socket servers a
successful connect.  Attempts back off from 50 ms to 1 s until the deadline;
the wait stops early when the process ends, so a crash gives 502 at once.

treq pitfalls (STYLE §1.6): one ``HTTPClient`` per supervisor over a
*non-persistent* pool (no idle probe connections left behind, no global pool),
an explicit ``timeout=`` on every attempt, and the body always drained.
"""

from __future__ import annotations

from treq.client import HTTPClient
from twisted.internet import defer, task
from twisted.internet.protocol import Factory, Protocol
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from ..net.connect import AddressEndpoint
from ..routing.addresses import Address

FIRST_DELAY = 0.05
MAX_DELAY = 1.0
ATTEMPT_TIMEOUT = 1.0


class NotReady(Exception):
    """The deadline passed without an answer."""


class ProcessGone(Exception):
    """The process ended while we waited for it."""


@implementer(IAgentEndpointFactory)
class _FixedEndpoint:
    """Every URL goes to one endpoint (the server's address, as ``net.connect``
    reaches it: treq cannot take an IPv6 literal in a URL)."""

    def __init__(self, endpoint) -> None:
        self.endpoint = endpoint

    def endpointForURI(self, uri):
        return self.endpoint


def _quiet_pool(reactor) -> HTTPConnectionPool:
    """A non-persistent pool whose per-probe factory does not log "Starting
    factory" for every attempt.  The factory is a private name of Twisted's:
    if it is gone the pool is used as it is (only the log is noisier)."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    factory = getattr(HTTPConnectionPool, "_factory", None)
    if isinstance(factory, type):
        pool._factory = type("QuietHTTP11ClientFactory", (factory,), {"noisy": False})
    return pool


class _QuietProbeFactory(Factory):
    """A raw-socket readiness probe: connected is ready."""

    noisy = False
    protocol = Protocol


class Prober:
    """Readiness checks for every server of one supervisor."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.pool = _quiet_pool(reactor)

    @staticmethod
    def _address(host: str, port: int, unix_socket: str | None) -> Address:
        return Address.unix(unix_socket) if unix_socket is not None else Address(host, port)

    async def _http_once(self, host: str, port: int, unix_socket: str | None, path: str, timeout: float) -> str:
        endpoint = AddressEndpoint(self.reactor, self._address(host, port, unix_socket), timeout)
        agent = Agent.usingEndpointFactory(self.reactor, _FixedEndpoint(endpoint), pool=self.pool)
        url = f"http://localhost{path}" if unix_socket is not None else f"http://{host}:{port}{path}"
        status = await self._get(HTTPClient(agent), url, timeout)
        where = f"on {unix_socket}" if unix_socket is not None else f"from {endpoint.connected_to}"
        return f"HTTP {status} {where}"

    async def _get(self, client, url: str, timeout: float) -> int:
        response = await client.get(url, timeout=timeout, allow_redirects=False)
        d = response.collect(lambda _data: None)  # drain and discard
        d.addTimeout(timeout, self.reactor)
        await d
        return response.code

    async def _connect_once(self, host: str, port: int, unix_socket: str | None, timeout: float) -> str:
        endpoint = AddressEndpoint(self.reactor, self._address(host, port, unix_socket), timeout)
        proto = await endpoint.connect(_QuietProbeFactory())
        proto.transport.abortConnection()
        return f"connected to {endpoint.connected_to}"

    def accepting(self, *, host: str, port: int, timeout: float = ATTEMPT_TIMEOUT) -> defer.Deferred:
        """Fire with True if something already accepts connections at ``host:port``
        (checked before a server is started there), else False."""

        async def check() -> bool:
            try:
                await self._connect_once(host, port, None, timeout)
            except Exception:  # noqa: BLE001 - refused, unreachable, timed out: nobody there
                return False
            return True

        return defer.Deferred.fromCoroutine(check())

    def wait_ready(self, *, host: str, port: int, unix_socket: str | None, path: str, timeout: float,
                   raw: bool, ended: defer.Deferred) -> defer.Deferred:
        """Fire with what answered (``"HTTP 200 from 127.0.0.1:8000"``, for the log) when
        the server answers; fail with ``NotReady`` at the deadline or ``ProcessGone`` as
        soon as ``ended`` fires."""
        if raw:
            def attempt(per_try):
                return self._connect_once(host, port, unix_socket, per_try)
        else:
            def attempt(per_try):
                return self._http_once(host, port, unix_socket, path, per_try)
        return _Wait(self.reactor, attempt, timeout, ended).run()

    def close(self) -> defer.Deferred:
        return self.pool.closeCachedConnections()


class _Wait:
    """One readiness wait: attempts with doubling pauses until one answers, the
    deadline passes (``NotReady``) or the process ends (``ProcessGone``)."""

    def __init__(self, clock, attempt, timeout: float, ended: defer.Deferred) -> None:
        self.clock = clock
        self.attempt = attempt  # (seconds for this try) -> coroutine answering or raising
        self.deadline = clock.seconds() + timeout
        self.gone = False
        self.pending: defer.Deferred | None = None  # the attempt or the pause in progress
        ended.addBoth(self._ended)

    def _ended(self, result):
        self.gone = True
        if self.pending is not None and not self.pending.called:
            self.pending.cancel()
        return result

    def _remaining(self) -> float:
        if self.gone:
            raise ProcessGone()
        remaining = self.deadline - self.clock.seconds()
        if remaining <= 0:
            raise NotReady()
        return remaining

    def run(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._loop())

    async def _loop(self) -> str:
        delay = FIRST_DELAY
        while True:
            per_try = min(self._remaining(), ATTEMPT_TIMEOUT)
            self.pending = defer.Deferred.fromCoroutine(self.attempt(per_try))
            try:
                answer = await self.pending
            except Exception:  # noqa: BLE001 - refused, reset, timeout, cancelled: not ready yet
                answer = None
            finally:
                self.pending = None
            if answer is not None and not self.gone:
                return answer
            self.pending = task.deferLater(self.clock, min(delay, self._remaining()), lambda: None)
            try:
                await self.pending
            except defer.CancelledError:
                pass
            finally:
                self.pending = None
            delay = min(delay * 2, MAX_DELAY)
