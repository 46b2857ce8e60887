"""websockify-style token files: ``?token=NAME`` → the target a bridge connects to.

A token file has one ``token: host:port`` (or ``token: unix_socket:/path``)
per line; ``#`` starts a comment.  ``--token-file`` may name a file or a
directory, in which case every regular file in it (not dotfiles) is read.
Tables are re-read when a file changes: the files' mtimes, sizes and inodes
(and a directory's listing) are compared at most once a second, on lookup, so a
change is seen within about a second and an idle bridge does no I/O at all.

``TokenTable.lookup`` returns an ``Address`` (``routing.addresses``), which the
bridge connects to.  The clock is injected (``now``), so tests drive the re-read.
"""

from __future__ import annotations

import os
import time

from twisted.logger import Logger

from ..routing.addresses import Address, AddressError, parse_token_target

log = Logger()

#: Seconds between two checks of the files' mtimes.
CHECK_INTERVAL = 1.0


class TokenFileError(Exception):
    """The token file or directory cannot be read at all."""


def parse_token_lines(text: str, source: str = "") -> dict[str, Address]:
    """Token → target for one file's text; bad lines are logged and skipped."""
    table: dict[str, Address] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token, sep, rest = line.partition(":")
        token = token.strip()
        try:
            if not sep or not token:
                raise AddressError("expected 'token: host:port'")
            table[token] = parse_token_target(rest)
        except (AddressError, ValueError) as e:
            log.warn("{source}:{number}: ignored: {error}", source=source, number=number, error=e)
    return table


class TokenTable:
    """The tokens of a file or directory, re-read when it changes."""

    def __init__(self, path: str, now=time.monotonic, interval: float = CHECK_INTERVAL) -> None:
        self.path = path
        self.now = now
        self.interval = interval
        self.table: dict[str, Address] = {}
        self._signature = None
        self._checked = now()
        self._signature = self._stat()  # raises TokenFileError if unreadable
        self.table = self._read()

    def lookup(self, token: str) -> Address | None:
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

    def _read(self) -> dict[str, Address]:
        table: dict[str, Address] = {}
        for name in self._files():
            try:
                with open(name, encoding="utf-8", errors="replace") as f:
                    table.update(parse_token_lines(f.read(), name))
            except OSError as e:
                raise TokenFileError(str(e)) from None
        return table
