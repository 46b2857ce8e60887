"""End-to-end smoke tests: python -m http.server behind the project role."""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT_ID
from tests.support.backends import HttpServerProcess
from tests.support.wire import connect, get


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "hello.txt").write_text("hello world\n")
    (root / "sub").mkdir()
    (root / "sub" / "page.html").write_text("<p>page</p>\n")
    server = HttpServerProcess(str(root))
    yield server
    server.close()


def test_server_route_strips_prefix(project_proxy, http_server):
    a = get(project_proxy.port, f"/{PROJECT_ID}/server/{http_server.port}/hello.txt")
    assert a.status == 200
    assert a.body == b"hello world\n"


def test_port_route_keeps_full_path(project_proxy, backend):
    path = f"/{PROJECT_ID}/port/{backend.port}/a/b?x=1"
    a = get(project_proxy.port, path)
    assert a.status == 200
    assert backend.requests[0].target == path.encode()


def test_trailing_slash_redirect_keeps_query(project_proxy, http_server):
    a = get(project_proxy.port, f"/{PROJECT_ID}/server/{http_server.port}?a=b")
    assert a.status == 301
    assert a.header(b"location") == f"/{PROJECT_ID}/server/{http_server.port}/?a=b".encode()


def test_keep_alive_two_backends_one_connection(project_proxy, http_server, backend):
    with connect(project_proxy.port) as c:
        c.send(f"GET /{PROJECT_ID}/server/{http_server.port}/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first = c.read_answer()
        c.send(f"GET /{PROJECT_ID}/server/{backend.port}/other HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        second = c.read_answer()
    assert (first.status, first.body) == (200, b"hello world\n")
    assert (second.status, second.body) == (200, b"ok")
    assert backend.requests[0].target == b"/other"


def test_healthz(project_proxy):
    a = get(project_proxy.port, f"/{PROJECT_ID}/healthz")
    assert (a.status, a.body) == (200, b"ok\n")
