"""The tests' one polling wait: ``wait_until(predicate, timeout)``.

Integration tests watch other processes (the proxy, servers, backends in
threads) that no fake clock can drive; they poll, briefly, with a deadline.
``wait_until`` returns whether the condition came true, so every caller says
what it waited for: ``assert wait_until(cond, 5), "what did not happen"``.
A predicate may raise to stop the wait early (a process that exited).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` has passed; True if it
    came true (it is asked once more at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


class Stalled:
    """A ``wait_until`` predicate: true once ``progress()`` has not changed for
    ``quiet`` seconds (a transfer that backpressure has stopped).  ``value`` is
    the last value seen."""

    def __init__(self, progress: Callable[[], object], quiet: float = 0.5) -> None:
        self.progress = progress
        self.quiet = quiet
        self.value = progress()
        self.since = time.monotonic()

    def __call__(self) -> bool:
        now = self.progress()
        if now != self.value:
            self.value, self.since = now, time.monotonic()
            return False
        return time.monotonic() - self.since >= self.quiet
