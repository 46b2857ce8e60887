"""SIGHUP with a broken TLS file or a broken ``--config`` (project role, SPEC §2:
"SIGHUP reloads TLS key/cert and config files without dropping connections").

The proxy runs with TLS and a config file naming a server ``app`` (no command:
proxied to as already running).  Each case breaks a file, sends SIGHUP and
checks: an error is logged, the old certificate / config stay in force for
new connections, a connection opened before keeps working, the process is
the same; then a good file and another SIGHUP are taken (a failed reload
leaves nothing stuck).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
from pathlib import Path

import pytest

from tests.faults.helpers import unexpected_tracebacks
from tests.support.app_backend import AppBackend
from tests.support.certs import TestPKI
from tests.support.procs import ProxyProcess
from tests.support.waiting import wait_until
from tests.support.wire import Wire, http_get

TLS_FAILED = "SIGHUP: reloading TLS key and certificate failed"
TLS_OK = "SIGHUP: reloaded TLS key and certificate"
CONFIG_FAILED = "SIGHUP: config not reloaded"
CONFIG_OK = "SIGHUP: config reloaded"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("pki"))


def servers_json(port: int, *names: str) -> str:
    return json.dumps({"servers": {n: {"port": port} for n in ("app", *names)}})


def servers_py(port: int, *names: str) -> str:
    return f"c.ServerProxy.servers = {{n: {{'port': {port}}} for n in {('app', *names)!r}}}\n"


class Proxy:
    def __init__(self, tmp: Path, pki: TestPKI, app: AppBackend, suffix: str = ".json") -> None:
        self.tmp, self.pki, self.app = tmp, pki, app
        self.key, self.cert = tmp / "live.key", tmp / "live.crt"
        self.install(pki.server())
        self.config = tmp / f"servers{suffix}"
        self.write_config()
        self.ctx = ssl.create_default_context(cafile=pki.ca)
        self.proc = ProxyProcess("project", ["--no-entry-points", "--config", str(self.config),
                                             "--https-key", str(self.key), "--https-cert", str(self.cert)])

    def install(self, pair) -> None:
        shutil.copy(pair.key, self.key)
        shutil.copy(pair.cert, self.cert)

    def write_config(self, *names: str) -> None:
        make = servers_py if self.config.suffix == ".py" else servers_json
        self.config.write_text(make(self.app.port, *names))

    def connect(self) -> Wire:
        raw = socket.create_connection(("127.0.0.1", self.proc.port), timeout=5)
        return Wire(self.ctx.wrap_socket(raw, server_hostname="localhost"), 5)

    def fingerprint(self) -> str:
        with self.connect() as w:
            return hashlib.sha256(w.sock.getpeercert(binary_form=True)).hexdigest()

    def get(self, path: str, wire: Wire | None = None) -> tuple[int, bytes]:
        own = wire is None
        wire = wire or self.connect()
        try:
            wire.send(http_get(path, host=b"localhost", close=False))
            a = wire.read_answer()
            return a.status, a.body
        finally:
            if own:
                wire.close()

    def hup(self, *markers: str) -> None:
        """SIGHUP, then wait until each marker has been logged once more."""
        log = self.proc.log_text()
        before = [log.count(m) for m in markers]
        os.kill(self.proc.pid, signal.SIGHUP)
        assert wait_until(lambda: all(self.proc.log_text().count(m) > n for m, n in zip(markers, before)), 5), \
            (markers, self.proc.log_text()[-2000:])

    def stop(self) -> None:
        self.proc.stop()


@pytest.fixture
def proxy(tmp_path, pki, app):
    p = Proxy(tmp_path, pki, app)
    yield p
    p.stop()


HELLO = (200, b"hello from the app")


def break_tls(p: Proxy, how: str) -> None:
    if how == "garbage certificate":
        p.cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    elif how == "empty key":
        p.key.write_bytes(b"")
    elif how == "missing certificate":
        p.cert.unlink()
    elif how == "key of another certificate":
        shutil.copy(p.pki.server().key, p.key)
    elif how == "truncated certificate":
        p.cert.write_bytes(p.cert.read_bytes()[:200])


@pytest.mark.parametrize("how", ["garbage certificate", "empty key", "missing certificate",
                                 "key of another certificate", "truncated certificate"])
def test_sighup_with_a_broken_tls_file_keeps_the_old_certificate(proxy, how):
    old = proxy.fingerprint()
    held = proxy.connect()
    try:
        assert proxy.get("/app/before", held) == HELLO
        break_tls(proxy, how)
        proxy.hup(TLS_FAILED)
        assert proxy.fingerprint() == old, "a new connection did not get the old certificate"
        assert proxy.get("/app/after") == HELLO
        assert proxy.get("/app/held", held) == HELLO, "a connection opened before the reload broke"
        assert proxy.proc.proc.poll() is None
        # a good pair is taken by the next SIGHUP
        proxy.install(proxy.pki.server())
        proxy.hup(TLS_OK)
        assert proxy.fingerprint() != old
        assert proxy.get("/app/new-cert") == HELLO
        assert proxy.get("/app/held-still", held) == HELLO
    finally:
        held.close()
    assert not unexpected_tracebacks(proxy.proc.log_text()), unexpected_tracebacks(proxy.proc.log_text())[:3]


JSON_BREAKS = {
    "syntax error": "{\"servers\": {",
    "bad server option": json.dumps({"servers": {"app": {"command": 5}}}),
    "unknown key": json.dumps({"servers": {}, "surprise": 1}),
    "wrong top level": "[1, 2, 3]",
    "missing file": None,
}
PY_BREAKS = {
    "raises": "raise RuntimeError('the operator made a typo')\n",
    "syntax error": "c.ServerProxy.servers = {\n",
    "bad allowlist": "c.ServerProxy.host_allowlist = 5\n",
    "sys.exit": "import sys\nsys.exit(3)\n",
}


@pytest.mark.parametrize("kind, case", [("json", k) for k in JSON_BREAKS] + [("py", k) for k in PY_BREAKS])
def test_sighup_with_a_broken_config_keeps_the_old_one(tmp_path, pki, app, kind, case):
    p = Proxy(tmp_path, pki, app, suffix=f".{kind}")
    try:
        held = p.connect()
        assert p.get("/app/before", held) == HELLO
        broken = (JSON_BREAKS if kind == "json" else PY_BREAKS)[case]
        if broken is None:
            p.config.unlink()
        else:
            p.config.write_text(broken)
        # sys.exit in a Python config escapes the config error handling: Twisted logs it as
        # a critical error instead of "config not reloaded" (reported); the old config stays
        p.hup("SystemExit" if case == "sys.exit" else CONFIG_FAILED)
        assert p.get("/app/after") == HELLO, "the old config is no longer in force"
        assert p.get("/app/held", held) == HELLO
        assert p.get("/app2/")[0] == 404
        assert p.proc.proc.poll() is None
        # a good file is taken by the next SIGHUP
        p.write_config("app2")
        p.hup(CONFIG_OK)
        assert p.get("/app2/x") == HELLO and p.get("/app/x") == HELLO
        assert p.get("/app/held-still", held) == HELLO
        held.close()
        if case != "sys.exit":
            assert not unexpected_tracebacks(p.proc.log_text()), unexpected_tracebacks(p.proc.log_text())[:3]
    finally:
        p.stop()


def test_sighup_with_both_broken_keeps_both(proxy):
    old = proxy.fingerprint()
    break_tls(proxy, "garbage certificate")
    proxy.config.write_text("{broken")
    proxy.hup(TLS_FAILED, CONFIG_FAILED)
    assert proxy.fingerprint() == old
    assert proxy.get("/app/x") == HELLO
    proxy.install(proxy.pki.server())
    proxy.write_config("app2")
    proxy.hup(TLS_OK, CONFIG_OK)
    assert proxy.fingerprint() != old
    assert proxy.get("/app2/x") == HELLO
