"""A backend dying in the middle of a response (SPEC §3: "a backend that dies
mid-response makes the proxy close that client connection — never hang, never
truncate silently into a keep-alive").

For the project role and through the whole chain (hub with TLS → host →
project → backend): the backend sends a response head and part of the body —
Content-Length framed, or chunked without its last-chunk — then closes (FIN)
or resets (RST).  The client must see the connection closed promptly, the
truncation must stay visible (fewer bytes than announced; no last-chunk made
up), and the connection must never be reused: a second request on it gets
nothing.  The proxy keeps serving afterwards.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.helpers import DyingBackend, plain_client, read_until_closed, second_request_answer, tls_client
from tests.support.chain import Chain
from tests.support.procs import ProxyProcess
from tests.support.wire import http_get

FRAMINGS = ["length", "head", "chunked"]
DEATHS = ["fin", "reset"]
CLOSE_WITHIN = 3.0  # seconds after the backend died (it pauses 0.3 s first)


@pytest.fixture(scope="module")
def project():
    p = ProxyProcess("project", ["--no-entry-points"])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("death-chain"))
    yield c
    c.close()


def check_truncated(raw: bytes, framing: str) -> None:
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\nconnection: keep-alive" not in head.lower()
    if framing == "chunked":
        assert b"hello\r\n" in body, "the chunks the backend sent did not all arrive"
        assert not body.endswith(b"0\r\n\r\n"), "the proxy made up a last-chunk: a truncated body looks whole"
    else:
        assert len(body) < 1_000_000
        if framing == "length":
            assert body == DyingBackend.BODY[: len(body)]


def run_dying(wire, request: bytes, framing: str, backend: DyingBackend) -> None:
    started = time.monotonic()
    wire.send(request)
    raw, closed = read_until_closed(wire, CLOSE_WITHIN + backend.pause)
    took = time.monotonic() - started
    assert closed, f"the client connection was left open after the backend died; got {raw[:200]!r}"
    assert took < CLOSE_WITHIN + backend.pause
    check_truncated(raw, framing)
    again = second_request_answer(wire, request)
    assert again == b"", f"the connection was reused after a cut response: {again[:200]!r}"
    assert backend.requests == 1, "the request was sent to the backend again"


@pytest.mark.parametrize("death", DEATHS)
@pytest.mark.parametrize("framing", FRAMINGS)
def test_project_role_closes_the_client_when_the_backend_dies(project, app, framing, death):
    backend = DyingBackend(framing, death)
    try:
        with plain_client(project.port) as wire:
            run_dying(wire, http_get(f"/server/{backend.port}/dies", close=False), framing, backend)
    finally:
        backend.close()
    with plain_client(project.port) as wire:  # still serving, on a new connection
        wire.send(http_get(f"/server/{app.port}/after", close=False))
        answer = wire.read_answer()
    assert (answer.status, answer.body) == (200, b"hello from the app")


@pytest.mark.parametrize("death", DEATHS)
@pytest.mark.parametrize("framing", FRAMINGS)
def test_chain_closes_the_client_when_the_backend_dies(chain, app, framing, death):
    backend = DyingBackend(framing, death)
    cookie = chain.cookie().encode()
    request = http_get(chain.backend_url_path(backend.port, "dies"), host=b"localhost",
                       headers=[(b"Cookie", cookie)], close=False)
    try:
        with tls_client(chain.hub.port, chain.context()) as wire:
            run_dying(wire, request, framing, backend)
    finally:
        backend.close()
    r = chain.https("GET", chain.backend_url_path(app.port, "after"), cookie=chain.cookie())
    assert (r.status, r.body) == (200, b"hello from the app")
    for proc in chain.procs:
        assert "Traceback" not in proc.log_text(), proc.log_text()[-3000:]
