"""``host_allowlist`` for ``proxy/HOST:PORT`` routes (SPEC §4).

Either a list of host names / IP addresses with shell-style wildcards
(``*.example.org``), matched case-insensitively, or a callable
``(handler, host) -> bool`` as in jupyter-server-proxy.  A callable that raises
denies the request, and ``on_error(host, exc)`` (the role logs it) hears why.
An IPv6 entry may be written with or without brackets.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

DEFAULT_ALLOWLIST = ("localhost", "127.0.0.1")


class HostAllowlist:
    __slots__ = ("patterns", "func", "on_error")

    def __init__(self, spec: Iterable[str] | Callable | None = None,
                 on_error: Callable[[str, Exception], None] | None = None) -> None:
        self.on_error = on_error
        self.func: Callable | None = None
        self.patterns: tuple[str, ...] = ()
        if spec is None:
            self.patterns = DEFAULT_ALLOWLIST
        elif callable(spec):
            self.func = spec
        else:
            if isinstance(spec, (str, bytes)):
                raise TypeError("host_allowlist must be a list of host patterns or a callable")
            patterns = []
            for item in spec:
                if not isinstance(item, str):
                    raise TypeError(f"host_allowlist entries must be strings, not {type(item).__name__}")
                if item.startswith("[") and item.endswith("]") and ":" in item:
                    item = item[1:-1]  # "[::1]" is an IPv6 literal, not an fnmatch character class
                patterns.append(item.lower())
            self.patterns = tuple(patterns)

    def allows(self, host: str, handler: object = None) -> bool:
        """``host`` as written in the URL (IPv6 literals with their brackets)."""
        if self.func is not None:
            try:
                return bool(self.func(handler, host))
            except Exception as e:  # a broken user callable must deny, never break the router
                if self.on_error is not None:
                    self.on_error(host, e)
                return False
        host = host.lower()
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(host, pattern) or fnmatch.fnmatchcase(bare, pattern):
                return True
        return False
