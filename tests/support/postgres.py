"""A real PostgreSQL server for the tests: ``initdb`` and ``pg_ctl`` in a temp dir,
listening on a free loopback port only, started and stopped by the test.

As root the server runs as the ``postgres`` user (PostgreSQL refuses to run
as root).  Never touches a shared or pre-existing server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from .procs import free_port


def _bindir() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    return os.path.dirname(candidates[-1]) if candidates else None


BINDIR = _bindir()


def available() -> bool:
    return BINDIR is not None


class PostgresServer:
    def __init__(self, database: str = "hub") -> None:
        if BINDIR is None:
            raise RuntimeError("PostgreSQL is not installed (initdb not found); .ci/run installs it")
        self.root = tempfile.mkdtemp(prefix="cocalcproxy-pg-")
        self.data = os.path.join(self.root, "data")
        self.logfile = os.path.join(self.root, "server.log")
        self.port = free_port()
        self.database = database
        self.user = "cocalcproxy"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(["initdb", "-D", self.data, "-U", self.user, "--auth=trust", "--encoding=UTF8", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = ''\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
                    # every statement, with the connection's application name: tests count the hub's queries
                    "log_statement = 'all'\nlog_line_prefix = '%m [%a] '\n")
        self.start()
        self._run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, database])

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        argv = [os.path.join(BINDIR, argv[0]), *argv[1:]]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=60, cwd=self.root)

    def start(self) -> None:
        self._run(["pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "-t", "30", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"], check=False)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def statements(self, application: str) -> list[str]:
        """The statements the connections named ``application`` have run so far."""
        prefix = f"[{application}] LOG:  "
        out = []
        for line in self.log().splitlines():
            if prefix not in line:
                continue
            text = line.split(prefix, 1)[1]
            for kind in ("statement: ", "execute <unnamed>: ", "execute "):
                if text.startswith(kind):
                    out.append(text[len(kind):].split(": ", 1)[-1] if kind == "execute " else text[len(kind):])
                    break
        return out

    def log(self) -> str:
        try:
            with open(self.logfile) as f:
                return f.read()
        except OSError:
            return ""
