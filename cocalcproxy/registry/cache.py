"""A small TTL cache for the hub's answers: tagged, bounded, with one lookup per key in flight.

- ``get(key)`` returns a live value or ``MISS``; values expire after the TTL
  they were stored with (the clock is injected, so tests advance it).
- ``tags`` say what an entry depends on (``account:<id>``, ``project:<id>``,
  ``credential:<hash>``…); ``invalidate(tag)`` drops every entry carrying it —
  how a NOTIFY from the database reaches the cache.
- ``lookup(key, fetch)`` de-duplicates: while one fetch for ``key`` runs,
  further callers wait on it (a burst of requests makes one query).  A result
  that arrives after an invalidation is handed to its waiters but not stored:
  it may predate the change.
- at most ``max_size`` entries; beyond that the oldest are dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable

from twisted.internet import defer
from twisted.python.failure import Failure

MISS = object()


class TTLCache:
    def __init__(self, clock, max_size: int = 100_000) -> None:
        self.clock = clock
        self.max_size = max_size
        self.entries: OrderedDict[Hashable, tuple[float, object, tuple]] = OrderedDict()
        self.by_tag: dict[str, set] = {}
        self.pending: dict[Hashable, list[defer.Deferred]] = {}
        self.epoch = 0  # bumped by every invalidation

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: Hashable):
        entry = self.entries.get(key)
        if entry is None:
            return MISS
        if entry[0] <= self.clock.seconds():
            self._drop(key)
            return MISS
        return entry[1]

    def put(self, key: Hashable, value, ttl: float, tags: Iterable[str] = ()) -> None:
        if ttl <= 0:
            return
        self._drop(key)
        tags = tuple(tags)
        self.entries[key] = (self.clock.seconds() + ttl, value, tags)
        for tag in tags:
            self.by_tag.setdefault(tag, set()).add(key)
        while len(self.entries) > self.max_size:
            self._drop(next(iter(self.entries)))

    def _drop(self, key: Hashable) -> None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return
        for tag in entry[2]:
            keys = self.by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.by_tag[tag]

    def invalidate(self, tag: str) -> int:
        """Drop every entry tagged ``tag``; how many there were."""
        self.epoch += 1
        keys = self.by_tag.pop(tag, ())
        for key in list(keys):
            self._drop(key)
        return len(keys)

    def clear(self) -> None:
        self.epoch += 1
        self.entries.clear()
        self.by_tag.clear()

    def lookup(self, key: Hashable, fetch: Callable[[], defer.Deferred],
               store: Callable[[object], tuple[float, Iterable[str]]]) -> defer.Deferred:
        """The value for ``key``: fetched once for every concurrent caller.

        ``store(value)`` says how long to keep it and with which tags."""
        waiting = self.pending.get(key)
        d = defer.Deferred()
        if waiting is not None:
            waiting.append(d)
            return d
        self.pending[key] = [d]
        epoch = self.epoch

        def done(result):
            waiters = self.pending.pop(key, [])
            ok = not isinstance(result, Failure)
            if ok and self.epoch == epoch:
                ttl, tags = store(result)
                self.put(key, result, ttl, tags)
            for w in waiters:
                if ok:
                    w.callback(result)
                else:
                    w.errback(result)
            return None

        defer.maybeDeferred(fetch).addBoth(done)
        return d


__all__ = ["MISS", "TTLCache"]
