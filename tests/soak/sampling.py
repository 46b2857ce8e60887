"""RSS and open descriptors of every proxy process, sampled in a thread.

``Sampler`` reads ``/proc/<pid>/status`` (VmRSS) and lists ``/proc/<pid>/fd``
for each named process every ``interval`` seconds; the samples carry the time
since traffic started, so the test can pick the one at the end of the warm-up
and the last ones under load.

``Idle`` is what an idle process holds: its fds, its established TCP sockets
and, for the hub, how many of those go to the database.  The hub's PostgreSQL
connections are counted apart: ``adbapi`` opens one per pool thread as load
needs them (up to ``--db-connections``, default 4, plus the LISTEN connection)
and keeps them for the life of the process — bounded, not a leak — so "back
to the idle baseline" compares every other descriptor exactly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.support.leaks import remote_ports
from tests.support.procs import fd_count, rss_kib


@dataclass
class Sample:
    t: float  # seconds since traffic started
    rss_kib: int
    fds: int


@dataclass
class Idle:
    """An idle process: descriptors, established TCP sockets, and those to the database."""

    fds: int
    sockets: int
    db: int

    @classmethod
    def of(cls, pid: int, db_port: int | None = None) -> "Idle":
        ports = remote_ports(pid)
        db = sum(1 for p in ports if p == db_port) if db_port else 0
        return cls(fd_count(pid), len(ports), db)

    @property
    def other_fds(self) -> int:
        return self.fds - self.db

    @property
    def other_sockets(self) -> int:
        return self.sockets - self.db


@dataclass
class Sampler:
    pids: dict[str, int]
    interval: float = 2.0
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.samples = {name: [] for name in self.pids}
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="soak-sampler")

    def sample(self) -> None:
        t = time.monotonic() - self.t0
        for name, pid in self.pids.items():
            try:
                self.samples[name].append(Sample(t, rss_kib(pid), fd_count(pid)))
            except (OSError, RuntimeError) as e:
                self.errors.append(f"{t:.1f}s {name} (pid {pid}): {e}")  # the process is gone: reported

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()

    # ------------------------------------------------------------ reading
    def at(self, name: str, t: float) -> Sample:
        """The sample nearest to ``t`` seconds."""
        return min(self.samples[name], key=lambda s: abs(s.t - t))

    def window(self, name: str, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples[name] if start <= s.t <= end]

    def peak(self, name: str) -> Sample:
        return max(self.samples[name], key=lambda s: s.rss_kib)

    def peak_fds(self, name: str) -> int:
        return max(s.fds for s in self.samples[name])


def median_rss(samples: list[Sample]) -> int:
    values = sorted(s.rss_kib for s in samples)
    return values[len(values) // 2]
