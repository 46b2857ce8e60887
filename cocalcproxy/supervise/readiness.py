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
from twisted.internet import error
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

FIRST_DELAY = 0.05
MAX_DELAY = 1.0
ATTEMPT_TIMEOUT = 1.0


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False  # no "Starting factory" log lines for every probe


class NotReady(Exception):
    """The deadline passed without an answer."""


class ProcessGone(Exception):
    """The process ended while we waited for it."""


@implementer(IAgentEndpointFactory)
class _FixedEndpoint:
    """Every URL goes to one endpoint: a unix socket, or one loopback address
    (treq cannot take an IPv6 literal in a URL)."""

    def __init__(self, endpoint) -> None:
        self.endpoint = endpoint

    def endpointForURI(self, uri):
        return self.endpoint


def _addresses(host: str) -> tuple[str, ...]:
    """``localhost`` is both loopbacks, IPv4 first, as the proxy connects (SPEC §4)."""
    return ("127.0.0.1", "::1") if host.lower() == "localhost" else (host,)


def _join(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _tcp_endpoint(reactor, addr: str, port: int, timeout: float):
    cls = TCP6ClientEndpoint if ":" in addr else TCP4ClientEndpoint
    return cls(reactor, addr, port, timeout=timeout)


class Prober:
    """Readiness checks for every server of one supervisor."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.pool._factory = _QuietFactory

    def _client_for(self, endpoint):
        agent = Agent.usingEndpointFactory(self.reactor, _FixedEndpoint(endpoint), pool=self.pool)
        return HTTPClient(agent)

    async def _http_once(self, host: str, port: int, unix_socket: str | None, path: str, timeout: float) -> str:
        if unix_socket is not None:
            client = self._client_for(UNIXClientEndpoint(self.reactor, unix_socket, timeout=timeout))
            status = await self._get(client, f"http://localhost{path}", timeout)
            return f"HTTP {status} on {unix_socket}"
        addresses = _addresses(host)
        for i, addr in enumerate(addresses):
            client = self._client_for(_tcp_endpoint(self.reactor, addr, port, timeout))
            try:
                status = await self._get(client, f"http://{host}:{port}{path}", timeout)
                return f"HTTP {status} from {_join(addr, port)}"
            except error.ConnectionRefusedError:
                if i + 1 == len(addresses):
                    raise
        raise AssertionError("unreachable")

    async def _get(self, client, url: str, timeout: float) -> int:
        response = await client.get(url, timeout=timeout, allow_redirects=False)
        d = response.collect(lambda _data: None)  # drain and discard
        d.addTimeout(timeout, self.reactor)
        await d
        return response.code

    async def _connect_once(self, host: str, port: int, unix_socket: str | None, timeout: float) -> str:
        if unix_socket is not None:
            places = [(unix_socket, UNIXClientEndpoint(self.reactor, unix_socket, timeout=timeout))]
        else:
            places = [(_join(a, port), _tcp_endpoint(self.reactor, a, port, timeout)) for a in _addresses(host)]
        for i, (where, endpoint) in enumerate(places):
            try:
                proto = await connectProtocol(endpoint, Protocol())
            except error.ConnectionRefusedError:
                if i + 1 == len(places):
                    raise
                continue
            proto.transport.abortConnection()
            return f"connected to {where}"
        raise AssertionError("unreachable")

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
        clock = self.reactor
        deadline = clock.seconds() + timeout
        state = {"gone": False, "attempt": None, "sleep": None}

        def on_end(result):
            state["gone"] = True
            for k in ("attempt", "sleep"):
                d = state[k]
                if d is not None and not d.called:
                    d.cancel()
            return result

        ended.addBoth(on_end)

        async def loop() -> str:
            delay = FIRST_DELAY
            while True:
                if state["gone"]:
                    raise ProcessGone()
                remaining = deadline - clock.seconds()
                if remaining <= 0:
                    raise NotReady()
                per_try = min(remaining, ATTEMPT_TIMEOUT)
                if raw:
                    coro = self._connect_once(host, port, unix_socket, per_try)
                else:
                    coro = self._http_once(host, port, unix_socket, path, per_try)
                attempt = state["attempt"] = defer.Deferred.fromCoroutine(coro)
                try:
                    answer = await attempt
                    if state["gone"]:
                        raise ProcessGone()
                    return answer
                except (ProcessGone, NotReady):
                    raise
                except Exception:  # noqa: BLE001 - refused, reset, timeout, cancelled: not ready yet
                    pass
                finally:
                    state["attempt"] = None
                if state["gone"]:
                    raise ProcessGone()
                remaining = deadline - clock.seconds()
                if remaining <= 0:
                    raise NotReady()
                sleep = state["sleep"] = task.deferLater(clock, min(delay, remaining), lambda: None)
                try:
                    await sleep
                except defer.CancelledError:
                    pass
                finally:
                    state["sleep"] = None
                delay = min(delay * 2, MAX_DELAY)

        return defer.Deferred.fromCoroutine(loop())

    def close(self) -> defer.Deferred:
        return self.pool.closeCachedConnections()
