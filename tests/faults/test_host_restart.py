"""A project host dying (SIGKILL) and coming back on the same port with the same
registry: the hub answers 502 at once while it is down — new connections, a
keep-alive connection opened before, a download cut in the middle — and
traffic flows again as soon as the new host listens, without touching the
hub (its pooled connections to the dead host are gone, not reused).
"""

from __future__ import annotations

import http.client
import signal
import time

import pytest
from websockets.sync.client import connect as ws_connect

from tests.faults.helpers import read_until_closed, tls_client
from tests.support.chain import Chain
from tests.support.procs import ProxyProcess
from tests.support.waiting import wait_until
from tests.support.wire import http_get
from tests.support.wsecho import WebSocketEchoServer

MiB = 1 << 20


@pytest.fixture(scope="module")
def echo():
    e = WebSocketEchoServer()
    yield e
    e.close()


def test_host_killed_is_502_then_traffic_again_on_restart(tmp_path, app, echo):
    chain = Chain(tmp_path)
    try:
        path = chain.backend_url_path(app.port, "hello")
        get = lambda: chain.https("GET", path, cookie=chain.cookie(), timeout=10)  # noqa: E731
        for _ in range(3):
            assert get().status == 200  # the hub now pools connections to the host
        kept = http.client.HTTPSConnection("localhost", chain.hub.port, context=chain.context(), timeout=10)
        kept.request("GET", path, headers={"Cookie": chain.cookie()})
        first = kept.getresponse()
        assert (first.status, first.read()) == (200, b"hello from the app")
        hub_pid = chain.hub.pid

        # a download crossing the host when it is killed: cut, closed, never hung
        download = tls_client(chain.hub.port, chain.context(), timeout=10)
        download.send(http_get(chain.backend_url_path(app.port, f"bytes?n={256 * MiB}"), host=b"localhost",
                               headers=[(b"Cookie", chain.cookie().encode())], close=False))
        assert download.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200 ")
        port = chain.host.port
        chain.host.stop(signal.SIGKILL)
        cut, closed = read_until_closed(download, 5)
        assert closed, "the client of a download through the killed host was left hanging"
        download.close()

        # down: 502 at once, on new connections and on the kept one
        for _ in range(5):
            started = time.monotonic()
            r = get()
            assert r.status == 502, (r.status, r.body[:300])
            assert time.monotonic() - started < 2
        kept.request("GET", path, headers={"Cookie": chain.cookie()})
        down = kept.getresponse()
        assert down.status == 502
        down.read()
        kept.close()

        # back on the same port with the same registry
        host = ProxyProcess("host", ["--base-url", "/", "--registry", str(chain.registry),
                                     "--hub-secret-file", str(chain.secret_file)], port=port)
        chain.procs.append(host)
        chain.host = host
        assert wait_until(lambda: get().status == 200, 5), "no traffic through the restarted host"
        for i in range(20):
            r = get()
            assert (r.status, r.body) == (200, b"hello from the app"), i
        url = f"wss://localhost:{chain.hub.port}{chain.backend_url_path(echo.port, 'ws')}"
        with ws_connect(url, ssl=chain.context(), additional_headers={"Cookie": chain.cookie()}) as ws:
            ws.send(b"after the restart")
            assert ws.recv(timeout=10) == b"after the restart"
        assert chain.hub.pid == hub_pid and chain.hub.proc.poll() is None
        assert "Traceback" not in chain.hub.log_text(), chain.hub.log_text()[-3000:]
    finally:
        chain.close()
