"""Sample a process's resident set size in a thread while a transfer runs."""

from __future__ import annotations

import threading


class RssSampler:
    """Polls ``read_kib()`` every ``interval`` seconds between ``start`` and ``stop``."""

    def __init__(self, read_kib, interval: float = 0.01) -> None:
        self.read_kib = read_kib
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.read_kib())
            except (OSError, RuntimeError):
                return  # the process is gone
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak_kib(self) -> int:
        return max(self.samples)
