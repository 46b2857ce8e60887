"""``--activity-file``: its mtime says when the project was last used.

Touched at most once a second (a busy WebSocket must not become a stream of
``utime`` calls); the proxy calls ``touch`` when a backend answers or tunnel
data passes, never for its own error pages.
"""

from __future__ import annotations

import os

from twisted.logger import Logger

log = Logger()


class ActivityFile:
    def __init__(self, path: str, clock, interval: float = 1.0) -> None:
        self.path = path
        self.clock = clock
        self.interval = interval
        self.last = float("-inf")
        if not os.path.exists(path):
            with open(path, "a"):
                pass

    def touch(self) -> None:
        now = self.clock.seconds()
        if now - self.last < self.interval:
            return
        self.last = now
        try:
            os.utime(self.path)
        except OSError as e:
            try:
                with open(self.path, "a"):
                    pass
            except OSError:
                log.warn("cannot touch activity file {path}: {e}", path=self.path, e=e)

    __call__ = touch
