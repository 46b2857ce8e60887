"""What a router decides for one request.  Plain values; the Twisted layer carries them out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Forward:
    """Proxy the request to ``host:port`` with request-target ``target``.

    ``context_path`` is set (without trailing slash) when the route strips a
    prefix: the backend then gets the context-path headers and 3xx Locations
    are rewritten (SPEC §3).  ``route`` names the route kind for logs/metrics.
    A ``host`` that is an absolute path (``/…``) is a UNIX socket (``port`` 0).
    ``set_headers`` replace same-named request headers (a server's
    ``request_headers_override``, the hub's secret); ``strip`` (lower-case
    names) and ``strip_cookies`` are credentials never forwarded; ``trusted``
    overrides the peer's ``--trusted-proxy`` standing for the X-Forwarded-*
    headers (the host role trusts a request with a valid hub secret);
    ``activity`` False keeps this exchange out of ``--activity-file``;
    ``rewrite`` (a ``ResponseFilter`` factory) holds the response back for a
    server's ``rewrite_response``; ``tls`` is the client TLS connection creator
    for an ``https://`` backend (a project host).
    """

    host: str
    port: int
    target: bytes
    context_path: bytes | None
    route: str
    set_headers: tuple = ()
    activity: bool = True
    rewrite: object = None
    strip: frozenset = frozenset()
    strip_cookies: frozenset = frozenset()
    trusted: bool | None = None
    tls: object = None


@dataclass(frozen=True, slots=True)
class Named:
    """Proxy to the named server process ``name`` (started on demand).

    ``rest`` is the request-target after the name (``/…``); ``full_target`` the
    original one, for servers with ``absolute_url``.
    """

    name: str
    rest: bytes
    full_target: bytes
    context_path: bytes


@dataclass(frozen=True, slots=True)
class Redirect:
    """Answer 301 with this Location (an absolute path, query kept)."""

    location: bytes
    status: int = 301


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer with an error page; ``headers`` are extra raw header lines
    (``b"Allow: GET"`` for a 405)."""

    status: int
    message: str
    headers: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Local:
    """Answer from the proxy itself (``healthz``, the index page, …)."""

    name: str
    arg: bytes = b""


@dataclass(frozen=True, slots=True)
class Handoff:
    """Give the whole client connection to another protocol (e.g. a WebSocket
    bridge terminated by Autobahn).

    ``start(transport, raw)`` is called with the client transport and the raw
    bytes already read (the request head, re-serialised byte for byte, plus
    anything buffered after it); it returns the protocol that from now on gets
    every ``dataReceived``/``connectionLost`` of the connection.  Routing,
    authorisation and rewriting stay ours: they happened before the handoff.
    """

    start: object
    route: str = "bridge"


Route = Forward | Named | Redirect | Reject | Local | Handoff
