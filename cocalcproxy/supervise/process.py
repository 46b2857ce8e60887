"""One supervised server process: start on demand, readiness, restart, stop.

States::

    STOPPED ──ensure_started──► STARTING ──ready──► RUNNING
       ▲                           │  timeout → kill, 504      │ exit (any code)
       │                           │  exit    → 502 at once    │
       └───────────────────────────┴───────────────────────────┘

Every request that arrives while STARTING waits on the same start.  The child
runs in its own session (a tiny Python shim calls ``os.setsid`` then
``execvp``), so stopping signals its whole process group: TERM, then KILL after
a grace period.  Its stdout/stderr are logged line by line, tagged with its name.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass

from twisted.internet import defer, error
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from .. import limits
from .readiness import NotReady, ProcessGone, Prober
from .spec import ServerSpec, SpecError, resolve

log = Logger()

STOPPED, STARTING, RUNNING, STOPPING = "stopped", "starting", "running", "stopping"
KILL_GRACE = limits.KILL_GRACE
#: Runs the command in a new session (its own process group).  On Linux it also
#: asks for SIGTERM when the proxy dies without stopping it (SIGKILL, a crash):
#: the death signal survives exec, so even then no server outlives the proxy.
_SHIM = """\
import os, signal, sys
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
except (OSError, AttributeError, ImportError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the proxy died before the death signal was armed
os.setsid()
os.execvp(sys.argv[2], sys.argv[2:])
"""


class StartError(Exception):
    """The server could not be made ready; ``status`` is 502 or 504."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where a running server listens (``unix_socket`` an absolute path)."""

    port: int | None
    unix_socket: str | None
    headers: tuple = ()


def free_port(attempts: int = 50) -> int:
    """A port free on *both* loopbacks.

    A server may bind either 127.0.0.1 or ::1, and readiness probes and the
    proxy try ::1 when 127.0.0.1 refuses (SPEC §4); a port that some other
    program holds on ::1 would make a server that is still starting look
    ready, and send its first requests elsewhere.
    """
    for _ in range(attempts):
        with socket.socket() as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            if _free_on_ipv6_loopback(port):
                return port
    raise OSError("no port is free on both 127.0.0.1 and ::1")


def _free_on_ipv6_loopback(port: int) -> bool:
    try:
        s6 = socket.socket(socket.AF_INET6)
    except OSError:
        return True  # no IPv6 at all: nothing can hold the port there
    with s6:
        try:
            s6.bind(("::1", port))
        except OSError as e:
            return e.errno == errno.EADDRNOTAVAIL  # no ::1 configured: same as above
        return True


class _Output(ProcessProtocol):
    """Logs the child's output line by line; fires ``ended`` on processEnded."""

    def __init__(self, name: str, ended: defer.Deferred) -> None:
        self.name = name
        self.ended = ended
        self.partial = {1: b"", 2: b""}

    def childDataReceived(self, fd: int, data: bytes) -> None:
        buf = self.partial.get(fd, b"") + data
        *lines, rest = buf.split(b"\n")
        if len(rest) > 65536:  # a line without end: log it in pieces
            lines.append(rest)
            rest = b""
        self.partial[fd] = rest
        for line in lines:
            self._log(fd, line)

    def _log(self, fd: int, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        log.info("[{server}] {line}", server=self.name, stream="stdout" if fd == 1 else "stderr", line=text)

    def processEnded(self, reason) -> None:
        for fd, rest in self.partial.items():
            if rest:
                self._log(fd, rest)
        self.partial = {}
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        self.ended.callback((code, sig))


class SupervisedServer:
    """The lifecycle of one named server."""

    def __init__(self, spec: ServerSpec, reactor, prober: Prober, base_url: str, kill_grace: float = KILL_GRACE) -> None:
        self.spec = spec
        self.reactor = reactor
        self.prober = prober
        self.base_url = base_url
        self.kill_grace = kill_grace
        self.state = STOPPED if spec.supervised else RUNNING
        self.pid: int | None = None
        self.target: Target | None = None
        self.started: float | None = None
        self.last_activity: float | None = None
        self._transport = None
        self._ended: defer.Deferred | None = None  # fires when the current child has ended
        self._waiters: list[defer.Deferred] = []
        self._generation = 0  # counts starts, so a late readiness result finds its own
        self._tempdir: str | None = None
        self._kill_call = None
        self.closed = False  # the proxy is stopping: never start again
        self.failed = False  # the last start failed (for the server_processes gauge)
        self.killpg = os.killpg  # replaced in tests that run on a fake reactor
        if not spec.supervised:
            self.target = self._fixed_target()

    # ----------------------------------------------------------- public API
    def running_target(self) -> Target | None:
        return self.target if self.state == RUNNING else None

    def ensure_started(self) -> defer.Deferred:
        """Fire with the ``Target`` once the server is ready; fail with ``StartError``."""
        if self.state == RUNNING:
            return defer.succeed(self.target)
        if self.closed:
            return defer.fail(StartError(503, f"The proxy is stopping; the server '{self.spec.name}' is not started."))
        d = defer.Deferred()
        self._waiters.append(d)
        if self.state == STOPPED:
            self._start()
        # STOPPING: _ended_cb starts it again for the waiters
        return d

    def stop(self) -> defer.Deferred:
        """TERM the process group, KILL after the grace period; fire when it has ended."""
        if self._ended is None or self._transport is None:
            return defer.succeed(None)
        ended = self._ended
        if self.state != STOPPING:
            self.state = STOPPING
            self._signal_group(signal.SIGTERM)
            self._kill_call = self.reactor.callLater(self.kill_grace, self._signal_group, signal.SIGKILL)
        d = defer.Deferred()
        ended.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    # ---------------------------------------------------------------- start
    def _fixed_target(self) -> Target:
        spec = self.spec
        sock = spec.unix_socket if isinstance(spec.unix_socket, str) else None
        try:
            headers = resolve(spec, spec.port or 0, sock or "", self.base_url).headers
        except SpecError as e:
            log.warn("{msg}", msg=str(e))
            headers = ()
        return Target(None if sock else spec.port, os.path.abspath(sock) if sock else None, headers)

    def _start(self) -> None:
        spec = self.spec
        self.state = STARTING
        self._generation += 1  # readiness results of an earlier start are stale from now on
        sock = None
        port = 0
        if spec.unix_socket is True:
            self._tempdir = tempfile.mkdtemp(prefix=f"cocalcproxy-{spec.name}-")
            os.chmod(self._tempdir, 0o700)
            sock = os.path.join(self._tempdir, "socket")
        elif spec.unix_socket:
            sock = spec.unix_socket
        else:
            try:
                port = spec.port or free_port()
            except OSError as e:  # fd limit reached, or no port free on the loopbacks
                log.error("server {server}: no port for it: {e}", server=spec.name, e=e)
                self._start_failed(502, f"The server '{spec.name}' could not be started: no free port.")
                return
        try:
            resolved = resolve(spec, port, sock or "", self.base_url)
            if not resolved.argv:
                raise SpecError(f"server {spec.name!r}: command: empty")
        except SpecError as e:
            log.error("cannot start: {msg}", msg=str(e))
            self._start_failed(502, f"The server '{spec.name}' could not be started: its configuration is invalid.")
            self._cleanup_tempdir()
            return
        if sock and os.path.exists(sock) and spec.unix_socket is not True:
            try:
                os.unlink(sock)  # a stale socket of an earlier run would look ready
            except OSError:
                pass
        if sock:
            self._spawn(resolved, port, sock)
            return
        # Something already answering on the port would pass the readiness check
        # and get this server's requests: another program, or a stale instance.
        d = self.prober.accepting(host="localhost", port=port)
        d.addCallback(self._port_checked, resolved, port)

    def _port_checked(self, taken: bool, resolved, port: int) -> None:
        name = self.spec.name
        if self.closed:
            self._start_failed(503, f"The proxy is stopping; the server '{name}' is not started.")
        elif taken:
            log.error("server {server}: port {port} is already in use by another program; not started",
                      server=name, port=port)
            self._start_failed(502, f"The server '{name}' could not be started: port {port} is already in use "
                                    "by another program.")
        else:
            self._spawn(resolved, port, None)

    def _spawn(self, resolved, port: int, sock: str | None) -> None:
        spec = self.spec
        env = dict(os.environ)
        env.update(resolved.environment)
        self.target = Target(None if sock else port, os.path.abspath(sock) if sock else None, resolved.headers)
        self._ended = ended = defer.Deferred()
        ended.addCallback(self._ended_cb)
        argv = [sys.executable, "-c", _SHIM, str(os.getpid()), *resolved.argv]
        try:
            self._transport = self.reactor.spawnProcess(_Output(spec.name, ended), sys.executable, argv, env=env)
        except Exception as e:  # noqa: BLE001 - fork/exec failure
            log.error("server {server}: spawn failed: {e}", server=spec.name, e=e)
            self._ended = None
            self._start_failed(502, f"The server '{spec.name}' could not be started.")
            return
        self.pid = self._transport.pid
        self._transport.closeStdin()  # servers read EOF, as from /dev/null under a service manager
        self.started = time.time()
        log.info("server {server}: started pid {pid}: {argv}", server=spec.name, pid=self.pid, argv=resolved.argv)
        if spec.absolute_url:
            path = self.base_url + spec.name + "/"
        else:
            path = "/"
        # localhost: IPv4 and IPv6 loopback, as the proxy connects (many dev servers bind only ::1)
        d = self.prober.wait_ready(host="localhost", port=port, unix_socket=sock, path=path, timeout=spec.timeout,
                                   raw=spec.raw_socket_proxy, ended=self._watch_end())
        generation = self._generation
        d.addCallbacks(self._ready, self._not_ready, callbackArgs=(generation,), errbackArgs=(generation,))

    def _watch_end(self) -> defer.Deferred:
        watch = defer.Deferred()
        self._ended.addBoth(lambda r: (watch.called or watch.callback(None), r)[1])
        return watch

    def _ready(self, answer, generation: int) -> None:
        if self.state != STARTING or generation != self._generation:
            return
        self.state = RUNNING
        self.failed = False
        took = time.time() - self.started if self.started else 0.0
        log.info("server {server}: ready after {took:.2f} s ({answer})", server=self.spec.name, took=took, answer=answer)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self.target)

    def _not_ready(self, failure, generation: int) -> None:
        if generation != self._generation:
            return  # that start was stopped and a new one is under way
        name = self.spec.name
        if failure.check(NotReady):
            log.warn("server {server}: not ready after {t} s; killing it", server=name, t=self.spec.timeout)
            self.stop()
            self._start_failed(504, f"The server '{name}' did not become ready within {self.spec.timeout:g} seconds.")
        elif failure.check(ProcessGone):
            self._start_failed(502, f"The server '{name}' exited while starting.")
        else:
            log.failure("server {server}: readiness check failed", failure, server=name)
            self.stop()
            self._start_failed(502, f"The server '{name}' could not be started.")

    def _start_failed(self, status: int, message: str) -> None:
        self.failed = status != 503
        if self.state == STARTING:
            self.state = STOPPED if self._ended is None else self.state
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(StartError(status, message))

    # ----------------------------------------------------------------- exit
    def _ended_cb(self, result) -> None:
        code, sig = result
        name = self.spec.name
        log.info("server {server}: pid {pid} ended (exit code {code}, signal {sig})", server=name, pid=self.pid, code=code, sig=sig)
        pid = self.pid
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self._kill_call = None
        if pid is not None:
            try:  # leftovers of its group (children it did not reap) go with it
                self.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        was = self.state
        self.state = STOPPED
        self._transport = None
        self._ended = None
        self.pid = None
        self.started = None
        self._cleanup_tempdir()
        if was == STARTING:
            pass  # readiness sees ProcessGone and answers the waiters with 502
        elif self._waiters and not self.closed:
            self._start()  # requests arrived while it was stopping: start afresh
        elif self._waiters:
            self._start_failed(503, f"The proxy is stopping; the server '{name}' is not started.")
        return None

    def _signal_group(self, sig: int) -> None:
        pid = self.pid
        if pid is None:
            return
        try:
            self.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            # The shim may not have called setsid yet: signal the child itself.
            try:
                self._transport.signalProcess(sig)
            except (error.ProcessExitedAlready, AttributeError):
                pass

    def _cleanup_tempdir(self) -> None:
        d, self._tempdir = self._tempdir, None
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)
