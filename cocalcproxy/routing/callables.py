"""Calling an operator's Python callables: one request object, one calling rule.

jupyter-server-proxy lets operators pass callables for ``host_allowlist``,
``mappath``, ``update_last_activity``, ``rewrite_response`` and the templated
server options.  Each callable gets only the keyword arguments it declares
(``call_with_declared``), and every one that looks at the request gets the same
``RequestView``: ``method``, ``uri``, ``path``, ``query``, ``host`` and
``headers`` (case-insensitive, repeated headers kept, tornado's
``HTTPHeaders`` shape).  ``request`` is the view itself, so code written for a
tornado handler (``handler.request.headers``) works as it is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any


class Headers:
    """A small case-insensitive multi-valued header list (tornado ``HTTPHeaders``-like)."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: list[tuple[str, str]] = list(pairs)

    def get_list(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self._pairs if k.lower() == n]

    def get(self, name: str, default=None):
        values = self.get_list(name)
        return ",".join(values) if values else default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value) -> None:
        n = name.lower()
        self._pairs = [(k, v) for k, v in self._pairs if k.lower() != n] + [(name, str(value))]

    def __delitem__(self, name: str) -> None:
        n = name.lower()
        if not any(k.lower() == n for k, _ in self._pairs):
            raise KeyError(name)
        self._pairs = [(k, v) for k, v in self._pairs if k.lower() != n]

    def add(self, name: str, value) -> None:
        self._pairs.append((name, str(value)))

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get_all(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def keys(self) -> list[str]:
        return [k for k, _ in self._pairs]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


class RequestView:
    """What an operator's callable sees of one request (text, decoded as latin-1)."""

    __slots__ = ("method", "uri", "path", "query", "host", "headers")

    def __init__(self, method: str, uri: str, headers: Headers, host: str = "") -> None:
        self.method = method
        self.uri = uri
        self.path, _, self.query = uri.partition("?")
        self.host = host
        self.headers = headers

    @classmethod
    def from_head(cls, req) -> "RequestView":
        """From a parsed ``RequestHead`` (header names in lower case, values as sent)."""
        headers = Headers((lname.decode("latin-1"), value.decode("latin-1")) for lname, value, _ in req.headers)
        host = req.host.decode("latin-1") if req.host is not None else ""
        return cls(req.method.decode("latin-1"), req.target.decode("latin-1"), headers, host)

    @property
    def request(self) -> "RequestView":
        """For callables written against a tornado handler: ``handler.request.…``."""
        return self

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments a per-request callable may declare."""
        return {"request": self, "path": self.path, "query": self.query, "method": self.method,
                "headers": self.headers}

    def __repr__(self) -> str:
        return f"<RequestView {self.method} {self.uri!r}>"


def call_with_declared(fn: Callable, available: dict) -> Any:
    """Call ``fn`` with only the arguments it declares (all of them for ``**kw``)."""
    try:
        names = _declared(fn)
    except TypeError:  # an unhashable callable: look at it every time
        names = _declared.__wrapped__(fn)
    if names is None:
        return fn(**available)
    return fn(**{name: available[name] for name in names if name in available})


@functools.lru_cache(maxsize=1024)
def _declared(fn: Callable) -> tuple[str, ...] | None:
    """The keyword arguments ``fn`` takes (None: any, it has ``**kw``); once per
    callable, since per-request callables (``mappath``, ``update_last_activity``)
    would otherwise pay for ``inspect.signature`` on every request."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return ()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL))


__all__ = ["Headers", "RequestView", "call_with_declared"]
