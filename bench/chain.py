#!/usr/bin/env python3
"""The chain, side by side, in the shared harness: project alone, host → project,
hub → host → project, and the hub with TLS (SPEC §5, §6).

Run through ``bench/chain.sh`` (it sets the harness up like its ``run.sh`` and
runs this from the harness folder).  Every candidate is started pinned to the
proxy CPU — for the chains, all three processes share it, so a hop's cost
shows up whole.  Requests carry an API key: ``Authorization: Bearer`` for wrk,
``KEY:@`` in the URL (HTTP Basic, the key as user name) for curl and the
WebSocket client.  ``direct`` is the backend alone, as in every harness run.

    bench/chain.sh [--runs 3] [--suites http,ws] [--tests ka,down,up] [--only ...]
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.getcwd())  # the harness folder (chain.sh runs us there)
sys.path.insert(0, REPO)

import bench as harness  # noqa: E402  (the shared harness's driver)

from cocalcproxy.admin import Admin  # noqa: E402
from cocalcproxy.registry.database import Database  # noqa: E402
from cocalcproxy.registry.hub_schema import create_schema  # noqa: E402

PROJECT = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
TWISTD = os.path.join(os.path.dirname(os.environ.get("COCALCPROXY_PYTHON", sys.executable)), "twistd")


class _Quiet:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def prepare(state: str) -> str:
    """Registry, hub database, hub secret and a TLS certificate for 127.0.0.1;
    returns the API key the load generators send."""
    os.makedirs(state, exist_ok=True)
    with open(os.path.join(state, "project_id"), "w") as f:
        f.write(PROJECT)
    with open(os.path.join(state, "secret"), "w") as f:
        f.write(uuid.uuid4().hex + "\n")
    port, inner, host = harness.PORT, harness.PORT + 10, harness.PORT + 11
    registry = os.path.join(state, f"registry-{inner}.sqlite3")
    if os.path.exists(registry):
        os.remove(registry)
    conn = sqlite3.connect(registry)
    conn.execute("CREATE TABLE projects (project_id TEXT PRIMARY KEY, state TEXT, http_port INTEGER)")
    conn.execute("INSERT INTO projects VALUES (?, 'running', ?)", (PROJECT, inner))
    conn.commit()
    conn.close()
    path = os.path.join(state, f"hub-{host}.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = Database.parse("sqlite:///" + path)
    create_schema(db)
    admin = Admin(db, _Quiet())
    admin.add_host("h1", f"http://127.0.0.1:{host}")
    owner = admin.add_account(str(uuid.uuid4()), False)
    admin.add_project(PROJECT, owner)
    admin.place(PROJECT, "h1")
    key = admin.new_secret("api_keys", owner, None)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", os.path.join(state, "hub.key"),
                    "-out", os.path.join(state, "hub.crt")], check=True, capture_output=True)
    assert port  # (the outermost role always listens on the harness's PORT)
    return key


def candidates(state: str, key: str) -> dict:
    roles = os.path.join(REPO, "bench", "chain_roles.sh")

    def cmd(mode: str) -> str:
        return f"env PYTHONPATH={REPO} {roles} {mode} {{port}} {state} {TWISTD}"

    path = f"/{PROJECT}/server/{{backend}}"
    user = f"{key}:@"
    return {
        "cocalcproxy-project": dict(cmd=cmd("project"), http=f"http://127.0.0.1:{{port}}{path}",
                                    ws=f"ws://127.0.0.1:{{port}}{path}"),
        "cocalcproxy-host": dict(cmd=cmd("host"), http=f"http://127.0.0.1:{{port}}{path}",
                                 ws=f"ws://127.0.0.1:{{port}}{path}"),
        "cocalcproxy-hub": dict(cmd=cmd("hub"), http=f"http://{user}127.0.0.1:{{port}}{path}",
                                ws=f"ws://{user}127.0.0.1:{{port}}{path}"),
        "cocalcproxy-hub-tls": dict(cmd=cmd("hubtls"), http=f"https://{user}127.0.0.1:{{port}}{path}",
                                    ws=f"wss://{user}127.0.0.1:{{port}}{path}"),
    }


def with_key(key: str):
    """The harness's wrk, sending the API key; its URL without the userinfo
    (wrk would ignore it), and its readiness probe with the key."""
    wrk, http_get = harness.wrk, harness.http_get

    def wrk_keyed(url, dur, conns, close=False):
        real = harness.subprocess.run

        def run(cmd, *a, **kw):
            if cmd and cmd[-1] == url and "wrk" in cmd:
                cmd = cmd[:-1] + ["-H", f"Authorization: Bearer {key}", url.replace(f"{key}:@", "")]
            return real(cmd, *a, **kw)

        harness.subprocess.run = run
        try:
            return wrk(url, dur, conns, close)
        finally:
            harness.subprocess.run = real

    def get_keyed(url, timeout=5):
        import ssl
        import urllib.request

        req = urllib.request.Request(url.replace(f"{key}:@", ""), headers={"Authorization": f"Bearer {key}"})
        ctx = ssl._create_unverified_context() if url.startswith("https") else None
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                return r.status, r.read()
        except Exception as e:  # noqa: BLE001 - the harness treats any failure as "not yet"
            return None, str(e).encode()

    harness.wrk = wrk_keyed
    harness.http_get = get_keyed
    del http_get


def main() -> None:
    state = os.path.join(os.getcwd(), "run", "cocalcproxy-chain")
    key = prepare(state)
    harness.CANDIDATES.update(candidates(state, key))
    with_key(key)
    os.environ["CURL_CA_BUNDLE"] = os.path.join(state, "hub.crt")  # curl verifies the hub's certificate
    os.environ["NODE_EXTRA_CA_CERTS"] = os.path.join(state, "hub.crt")  # so does the WebSocket client
    if "--only" not in sys.argv:
        sys.argv += ["--only", ",".join(candidates(state, key))]
    harness.main()


if __name__ == "__main__":
    main()
