"""websockify-style token files: ``?token=NAME`` → the target a bridge connects to.

A token file has one ``token: host:port`` (or ``token: unix_socket:/path``)
per line; ``#`` starts a comment.  ``--token-file`` may name a file or a
directory, in which case every regular file in it (not dotfiles) is read.
Tables are re-read when a file changes: the files' mtimes, sizes and inodes
(and a directory's listing) are compared at most once a second, on lookup, so a
change is seen within about a second and an idle bridge does no I/O at all.

Pure Python; ``TokenTable.lookup`` returns a ``Target`` value, which the bridge
turns into an endpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from twisted.logger import Logger

log = Logger()

#: Seconds between two checks of the files' mtimes.
CHECK_INTERVAL = 1.0


class TokenFileError(Exception):
    """The token file or directory cannot be read at all."""


@dataclass(frozen=True, slots=True)
class Target:
    """A TCP ``host``/``port`` or a unix socket ``path`` (then ``host`` is None)."""

    host: str | None = None
    port: int = 0
    path: str | None = None


def parse_target_text(text: str) -> Target:
    """``host:port``, ``[v6]:port``, ``v6:port`` or ``unix_socket:/path``; ValueError if not."""
    text = text.strip()
    if text.startswith("unix_socket:"):
        path = text[len("unix_socket:"):].strip()
        if not path:
            raise ValueError("empty unix_socket path")
        return Target(path=path)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(ch in host for ch in "/@ \t[]"):
        raise ValueError(f"bad host in {text!r}")
    return Target(host=host, port=int(port))


def parse_token_lines(text: str, source: str = "") -> dict[str, Target]:
    """Token → target for one file's text; bad lines are logged and skipped."""
    table: dict[str, Target] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token, sep, rest = line.partition(":")
        token = token.strip()
        try:
            if not sep or not token:
                raise ValueError("expected 'token: host:port'")
            table[token] = parse_target_text(rest)
        except ValueError as e:
            log.warn("{source}:{number}: ignored: {error}", source=source, number=number, error=e)
    return table


class TokenTable:
    """The tokens of a file or directory, re-read when it changes."""

    def __init__(self, path: str, now=time.monotonic, interval: float = CHECK_INTERVAL) -> None:
        self.path = path
        self.now = now
        self.interval = interval
        self.table: dict[str, Target] = {}
        self._signature = None
        self._checked = now()
        self._signature = self._stat()  # raises TokenFileError if unreadable
        self.table = self._read()

    def lookup(self, token: str) -> Target | None:
        now = self.now()
        if now - self._checked >= self.interval:
            self._checked = now
            self.refresh()
        return self.table.get(token)

    def refresh(self) -> None:
        """Re-read the tables if any file changed; keep the old ones on errors."""
        try:
            signature = self._stat()
            if signature == self._signature:
                return
            table = self._read()
        except TokenFileError as e:
            log.warn("token file {path}: {error}; keeping the previous tokens", path=self.path, error=e)
            return
        self._signature = signature
        self.table = table
        log.info("token file {path}: {n} token(s) loaded", path=self.path, n=len(table))

    def _files(self) -> list[str]:
        if os.path.isdir(self.path):
            try:
                names = sorted(os.listdir(self.path))
            except OSError as e:
                raise TokenFileError(str(e)) from None
            return [os.path.join(self.path, n) for n in names if not n.startswith(".")
                    and os.path.isfile(os.path.join(self.path, n))]
        return [self.path]

    def _stat(self):
        out = []
        for name in self._files():
            try:
                st = os.stat(name)
            except OSError as e:
                raise TokenFileError(str(e)) from None
            out.append((name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _read(self) -> dict[str, Target]:
        table: dict[str, Target] = {}
        for name in self._files():
            try:
                with open(name, encoding="utf-8", errors="replace") as f:
                    table.update(parse_token_lines(f.read(), name))
            except OSError as e:
                raise TokenFileError(str(e)) from None
        return table
