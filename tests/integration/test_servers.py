"""Supervised server processes end to end (SPEC §4): real proxy, real child processes.

One proxy (module scope) runs ``tests/support/servers_config.py``; its servers
are small real processes (``python -m http.server``, ``tests.support.toy_server``).
Child PIDs come from the pid files the servers write at start, so every
"killed" / "restarted" / "no orphan" claim is checked against the kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support.backends import RecordingBackend
from tests.support.procs import REPO, ProxyProcess, free_port, wait_for_port
from tests.support.waiting import wait_until
from tests.support.wire import get, request

CONFIG = str(REPO / "tests" / "support" / "servers_config.py")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before open(), or reaped between open() and read()
        return False


def pids(state: Path, name: str) -> list[int]:
    f = state / f"{name}.pids"
    return [int(x) for x in f.read_text().split()] if f.exists() else []


def group_members(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry))
    return out


def external_answer(req):
    if req.target.endswith(b"/chunked"):
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n"
                b"6\r\n{\"pid\"\r\n4\r\n: 1}\r\n0\r\n\r\n")
    if req.target.endswith(b"/empty"):
        return b"HTTP/1.1 204 No Content\r\nX-Up: 1\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(scope="module")
def external():
    b = RecordingBackend(external_answer)
    yield b
    b.close()


FIXED_PORT = 0  # picked when the module's proxy starts, not at collection (a minute earlier in a full run)


@pytest.fixture(scope="module")
def env(tmp_path_factory, external):
    global FIXED_PORT
    FIXED_PORT = free_port()
    state = tmp_path_factory.mktemp("servers")
    activity = state / "activity"
    proxy = ProxyProcess("project", ["--config", CONFIG, "--no-entry-points", "--activity-file", str(activity),
                                     "--rewrite-max-bytes", "100000", "--kill-grace", "1"],
                         env={"TOY_STATE": str(state), "TOY_EXTERNAL_PORT": str(external.port),
                              "TOY_FIXED_PORT": str(FIXED_PORT)})
    yield proxy, state, activity
    proxy.stop()


def body_json(answer):
    assert answer.status == 200, answer.body[:300]
    return json.loads(answer.body)


# ----------------------------------------------------------------- serving
def test_python_http_server_started_on_first_request(env):
    proxy, state, _ = env
    (state / "hello.txt").write_text("hello from http.server\n")
    answer = get(proxy.port, "/pyhttp/hello.txt")
    assert answer.status == 200
    assert answer.body == b"hello from http.server\n"


def test_no_trailing_slash_redirects(env):
    proxy, _, _ = env
    answer = get(proxy.port, "/pyhttp?x=1")
    assert answer.status == 301
    assert answer.header(b"location") == b"/pyhttp/?x=1"


def test_templates_environment_headers_and_mappath(env):
    proxy, state, _ = env
    seen = body_json(get(proxy.port, "/toy/a/b?q=1", {"User-Agent": "client"}))
    assert seen["path"] == "/a/b?q=1"  # the name is stripped, the query kept
    port = int(seen["env"]["TOY_PORT"])
    assert seen["env"]["TOY_BRACES"] == "{literal}"
    assert seen["env"]["TOY_BASE"] == "/"
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["x-toy-override"] == f"port {port}"
    assert headers["user-agent"] == "overridden"
    assert [v for k, v in seen["headers"] if k.lower() == "user-agent"] == ["overridden"]
    assert headers["x-forwarded-context"] == "/toy"
    assert pids(state, "toy") == [seen["pid"]]
    assert body_json(get(proxy.port, "/toy/mapped?z"))["path"] == "/was-mapped?z"


def test_callables_get_only_declared_arguments(env):
    proxy, state, _ = env
    seen = body_json(get(proxy.port, "/callable/x"))
    assert seen["path"] == "/m/x"  # mappath callable
    port = seen["env"]["TOY_DIRECT"]
    assert seen["env"]["TOY_FROM_CALLABLE"] == f"p={port} b=/"  # a callable's result is templated once
    assert pids(state, "callable") == [seen["pid"]]


def test_absolute_url_sees_full_path(env):
    proxy, _, _ = env
    assert body_json(get(proxy.port, "/absolute/deep/x?y"))["path"] == "/absolute/deep/x?y"


def test_fixed_port(env):
    proxy, _, _ = env
    seen = body_json(get(proxy.port, "/fixedport/"))
    assert body_json(get(proxy.port, "/server-proxy/api/servers/fixedport"))["port"] == FIXED_PORT
    assert get(FIXED_PORT, "/direct").status == 200  # it really listens there
    assert seen["path"] == "/"


def test_unix_socket_true_uses_private_dir(env):
    proxy, state, _ = env
    seen = body_json(get(proxy.port, "/sock/hi"))
    assert seen["path"] == "/hi"
    info = body_json(get(proxy.port, "/server-proxy/api/servers/sock"))
    path = info["unix_socket"]
    assert info["port"] is None and path.endswith("/socket")
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    assert info["pid"] == pids(state, "sock")[0]


def test_unix_socket_path(env):
    proxy, state, _ = env
    assert body_json(get(proxy.port, "/fixedsock/x"))["path"] == "/x"
    assert (state / "fixed.sock").exists()


def test_server_listening_only_on_ipv6_loopback(env):
    proxy, _, _ = env
    assert body_json(get(proxy.port, "/v6only/x"))["path"] == "/x"


def test_server_without_command_is_proxied_as_running(env, external):
    proxy, _, _ = env
    answer = get(proxy.port, "/external/already/running")
    assert answer.status == 200
    assert external.wait_requests(1)[-1].target == b"/already/running"


@pytest.mark.parametrize("name", ["wsecho", "wsunix"])
def test_websocket_to_named_server_over_tcp_and_unix_socket(env, name):
    from websockets.sync.client import connect

    proxy, _, _ = env
    with connect(f"ws://127.0.0.1:{proxy.port}/{name}/", open_timeout=20) as ws:
        ws.send("hello " + name)
        assert ws.recv(timeout=10) == "hello " + name
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"\x00\x01binary"


# --------------------------------------------------------------- lifecycle
def test_server_that_exits_is_restarted_on_next_request(env):
    proxy, state, _ = env
    first = body_json(get(proxy.port, "/once/"))["pid"]
    assert wait_until(lambda: not alive(first), 10), "timed out waiting for the one-shot server to exit"
    second = body_json(get(proxy.port, "/once/"))["pid"]
    assert second != first
    assert pids(state, "once") == [first, second]


def test_never_ready_gives_504_and_is_killed(env):
    proxy, state, _ = env
    started = time.monotonic()
    answer = get(proxy.port, "/never/")
    assert answer.status == 504
    assert b"never" in answer.body
    assert 1.3 < time.monotonic() - started < 6
    [pid] = pids(state, "never")
    assert wait_until(lambda: not alive(pid), 5), "timed out waiting for the never-ready server to be killed"


def test_crash_on_start_gives_502_at_once(env):
    proxy, _, _ = env
    started = time.monotonic()
    answer = get(proxy.port, "/crash/")
    assert answer.status == 502
    assert b"crash" in answer.body
    assert time.monotonic() - started < 5  # not the 30 s readiness timeout


def test_missing_executable_gives_502(env):
    proxy, _, _ = env
    started = time.monotonic()
    answer = get(proxy.port, "/missing/")
    assert answer.status == 502 and b"missing" in answer.body
    assert time.monotonic() - started < 5


def test_concurrent_first_requests_share_one_start(env):
    proxy, state, _ = env
    results: list = []

    def fetch():
        try:
            results.append(get(proxy.port, "/slow/x").status)
        except Exception as e:  # noqa: BLE001 - reported below
            results.append(repr(e))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 8
    assert len(pids(state, "slow")) == 1


def test_raw_socket_server_refuses_plain_http(env):
    proxy, _, _ = env
    assert get(proxy.port, "/raw/").status == 405
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    head = "".join(f"{k}: {v}\r\n" for k, v in upgrade.items())
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(f"GET /raw/ HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
        status_line = s.recv(65536).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 101 ")


def test_raw_socket_server_bridged_to_websocket(env):
    from websockets.sync.client import connect

    proxy, _, _ = env
    with connect(f"ws://127.0.0.1:{proxy.port}/raw/", open_timeout=20) as ws:
        ws.send(b"raw bytes \x00\xff")
        assert ws.recv(timeout=10) == b"raw bytes \x00\xff"
        ws.send(b"more")
        assert ws.recv(timeout=10) == b"more"


# -------------------------------------------------------------- management
def test_servers_info(env):
    proxy, _, _ = env
    info = body_json(get(proxy.port, "/server-proxy/servers-info"))
    by_name = {s["name"]: s for s in info["server_processes"]}
    assert by_name["pyhttp"] == {
        "name": "pyhttp",
        "launcher_entry": {"enabled": True, "title": "Python HTTP", "path_info": "pyhttp/", "category": "Notebook",
                           "icon_url": "/server-proxy/icon/pyhttp"},
        "new_browser_tab": True,
    }
    assert by_name["toy"]["new_browser_tab"] is False
    assert "icon_url" not in by_name["toy"]["launcher_entry"]
    assert by_name["callable"]["launcher_entry"]["enabled"] is False


def test_icon(env):
    proxy, _, _ = env
    answer = get(proxy.port, "/server-proxy/icon/pyhttp")
    assert answer.status == 200
    assert answer.header(b"content-type") == b"image/svg+xml"
    assert answer.body.startswith(b"<svg")
    assert get(proxy.port, "/server-proxy/icon/toy").status == 404
    assert get(proxy.port, "/server-proxy/icon/nosuch").status == 404
    # the API's 404s are the proxy's error pages: JSON when asked for, HTML otherwise
    for path, message in (("/server-proxy/icon/toy", "This server has no icon."),
                          ("/server-proxy/api/servers/nosuch", "No such running server.")):
        answer = get(proxy.port, path, {"Accept": "application/json"})
        assert answer.status == 404
        assert json.loads(answer.body) == {"status": 404, "error": "Not Found", "message": message}
        assert get(proxy.port, path).header(b"content-type") == b"text/html; charset=utf-8"


def test_running_servers_and_delete(env):
    proxy, state, _ = env
    seen = body_json(get(proxy.port, "/toy/"))
    listing = body_json(get(proxy.port, "/server-proxy/api/servers/"))
    entry = {s["name"]: s for s in listing}["toy"]
    assert set(entry) == {"name", "pid", "port", "unix_socket", "started", "last_activity"}
    assert entry["pid"] == seen["pid"] and isinstance(entry["port"], int) and entry["unix_socket"] is None
    assert entry["started"].endswith("Z") and entry["last_activity"].endswith("Z")
    assert "crash" not in {s["name"] for s in listing}
    answer = request(proxy.port, b"DELETE /server-proxy/api/servers/toy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 204
    assert not alive(seen["pid"])  # 204 comes after the process has ended
    assert "toy" not in {s["name"] for s in body_json(get(proxy.port, "/server-proxy/api/servers/"))}
    assert request(proxy.port, b"DELETE /server-proxy/api/servers/nosuch HTTP/1.1\r\nHost: x\r\n\r\n").status == 404
    again = body_json(get(proxy.port, "/toy/"))  # and it starts again on demand
    assert again["pid"] != seen["pid"]


def test_launcher_page_lists_enabled_servers(env):
    proxy, _, _ = env
    answer = get(proxy.port, "/")
    assert answer.status == 200
    assert answer.header(b"content-type").startswith(b"text/html")
    page = answer.body.decode()
    assert '<a href="/pyhttp/" target="_blank" rel="noopener">Python HTTP</a>' in page
    assert '<a href="/toy/">toy</a>' in page  # new_browser_tab false: same tab
    assert 'src="/server-proxy/icon/pyhttp"' in page
    assert "/callable/" not in page  # launcher_entry disabled
    assert "<script" not in page


# ----------------------------------------------------------------- rewrite
def test_rewrite_response(env):
    proxy, _, _ = env
    answer = get(proxy.port, "/rewrite/page?q=1")
    assert answer.status == 200
    assert b'"PID"' in answer.body and b'"pid"' not in answer.body
    assert answer.header(b"x-rewritten") == b"yes /page"  # the proxied path, without the query
    assert int(answer.header(b"content-length")) == len(answer.body)


def test_rewrite_of_chunked_responses_keeps_the_connection(env):
    from tests.support.wire import connect

    proxy, _, _ = env
    with connect(proxy.port) as c:
        for _ in range(2):  # keep-alive: the rewritten response is framed with Content-Length
            c.send(b"GET /extrewrite/chunked HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = c.read_answer()
            assert answer.status == 200 and answer.body == b'{"PID": 1}'
            assert answer.header(b"content-length") == b"10" and answer.header(b"transfer-encoding") is None
            assert answer.header(b"x-rewritten") == b"yes /chunked" and answer.header(b"x-up") == b"1"
        c.send(b"GET /extrewrite/empty HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = c.read_answer()
        assert answer.status == 204 and answer.header(b"x-rewritten") is None  # 204 passes unchanged
    old = request(proxy.port, b"GET /extrewrite/chunked HTTP/1.0\r\nHost: x\r\n\r\n")
    assert old.status == 200 and old.body == b'{"PID": 1}'


def test_rewrite_beyond_limit_is_502(env, external):
    proxy, _, _ = env
    assert get(proxy.port, "/rewrite/?pad=90000").status == 200
    answer = get(proxy.port, "/rewrite/?pad=120000")  # over --rewrite-max-bytes 100000
    assert answer.status == 502


# ---------------------------------------------------------------- activity
# The rate limit itself (at most one touch a second, a deleted file recreated,
# an unwritable one only logged) is tested on a fake clock in
# tests/twisted/test_project_activity.py; here, which routes count, with real
# processes and the real clock.
OLD = 1_000_000  # an mtime long past: any touch moves it


def _set_old(path: Path) -> None:
    os.utime(path, (OLD, OLD))


def _touched(path: Path) -> bool:
    return path.stat().st_mtime != OLD


@pytest.fixture
def activity_proxies(tmp_path, external):
    """Four proxies, each with its own activity file, started side by side.

    The file is touched at most once a second per proxy, and a fresh proxy has
    not touched it yet: each proxy gives one check right away and, after one
    shared one-second wait, one more.
    """
    procs = []
    for i in range(4):
        state = tmp_path / f"p{i}"
        state.mkdir()
        procs.append(ProxyProcess("project", ["--config", CONFIG, "--no-entry-points", "--activity-file",
                                              str(state / "activity"), "--kill-grace", "1"],
                                  env={"TOY_STATE": str(state), "TOY_EXTERNAL_PORT": str(external.port)},
                                  wait=False))
    try:
        for p in procs:
            wait_for_port(p.port, proc=p.proc)
        yield [(p, tmp_path / f"p{i}" / "activity") for i, p in enumerate(procs)]
    finally:
        for p in procs:
            p.stop()


def test_activity_file_by_route(activity_proxies, external):
    """Real-time smoke test: proxied answers and WebSocket frames touch the file;
    the proxy's own error pages and servers that opt out do not."""
    from websockets.sync.client import connect

    (p_port, a_port), (p_server, a_server), (p_proxy, a_proxy), (p_named, a_named) = activity_proxies
    ext = external.port

    # -- each proxy's first window: nothing touched the file yet
    for proxy, activity, path in ((p_port, a_port, f"/port/{ext}/x"), (p_server, a_server, f"/server/{ext}/x"),
                                  (p_proxy, a_proxy, f"/proxy/{ext}/x")):
        assert activity.exists()
        _set_old(activity)
        assert get(proxy.port, path).status == 200
        assert wait_until(lambda: _touched(activity), 3), f"no activity file touch for {path}"
        _set_old(activity)
        assert get(proxy.port, path).status == 200
        assert not _touched(activity)  # the same second: the rate limit holds (the touch is made before the answer)

    _set_old(a_named)
    assert get(p_named.port, "/nosuchserver/").status == 404
    assert get(p_named.port, "/crash/").status == 502
    assert get(p_named.port, "/server/1/").status == 502  # nothing listens on port 1: the proxy's error page
    assert get(p_named.port, "/quiet/").status == 200  # update_last_activity: false
    assert request(p_named.port, b"HEAD /picky/ HTTP/1.1\r\nHost: x\r\n\r\n", method=b"HEAD").status == 200  # callable says no
    assert get(p_named.port, "/picky/metrics").status == 200  # exclude_last_activity_patterns
    assert not _touched(a_named)  # a touch is made before the answer is sent: no need to wait for one
    assert get(p_named.port, "/picky/").status == 200  # callable says yes for GET
    # (had any of the above touched the file, this one would fall in its second and not touch it)
    assert wait_until(lambda: _touched(a_named), 3), "no activity file touch for /picky/"

    # -- the second window, one second on; the WebSocket handshakes happen before it opens
    with contextlib.ExitStack() as stack:
        sockets = [(stack.enter_context(connect(f"ws://127.0.0.1:{proxy.port}/{name}/", open_timeout=20)),
                    activity, name)
                   for proxy, activity, name in ((p_port, a_port, "wsecho"), (p_server, a_server, "wsunix"),
                                                 (p_proxy, a_proxy, "raw"))]
        time.sleep(1.05)  # the one real-time wait: every proxy's last touch is a second old
        for ws, activity, name in sockets:
            _set_old(activity)
            ws.send(b"frame for " + name.encode())
            assert ws.recv(timeout=10) == b"frame for " + name.encode()
            assert wait_until(lambda: _touched(activity), 3), f"no activity file touch from {name} frames"
    _set_old(a_named)
    assert get(p_named.port, "/pyhttp/").status == 200  # a named server with the default settings
    assert wait_until(lambda: _touched(a_named), 3), "no activity file touch for /pyhttp/"


# ------------------------------------------------------- port already taken
def test_fixed_port_taken_by_another_program_is_502_and_it_gets_nothing(tmp_path):
    """Its readiness probe would pass against the squatter and the user's requests
    would go to it: the server is not started, and the squatter sees no request."""
    squatter = RecordingBackend()
    config = tmp_path / "squat.json"
    config.write_text(json.dumps({"servers": {"squatted": {
        "command": ["python3", "-m", "http.server", "{port}"], "port": squatter.port, "timeout": 5}}}))
    proxy = ProxyProcess("project", ["--config", str(config), "--no-entry-points", "--kill-grace", "1"])
    try:
        answer = get(proxy.port, "/squatted/secret?token=abc")
        assert answer.status == 502, answer.body[:300]
        assert f"port {squatter.port} is already in use by another program".encode() in answer.body
        assert "not started" in proxy.log_text()
        assert "started pid" not in proxy.log_text()
        squatter.close()  # the program goes away: the next request starts the server
        assert wait_until(lambda: get(proxy.port, "/squatted/").status == 200, 15), "start after the port is free"
    finally:
        proxy.stop()
        squatter.close()
    assert squatter.requests == []


# ---------------------------------------------------------------- shutdown
def test_sigterm_of_the_proxy_leaves_no_child(tmp_path):
    state = tmp_path
    proxy = ProxyProcess("project", ["--config", CONFIG, "--no-entry-points", "--kill-grace", "1"],
                         env={"TOY_STATE": str(state)})
    try:
        toy = body_json(get(proxy.port, "/toy/"))["pid"]
        sock = body_json(get(proxy.port, "/sock/"))["pid"]
        assert get(proxy.port, "/pyhttp/").status == 200
        children = [toy, sock]
        assert all(alive(p) for p in children)
        assert all(os.getpgid(p) == p for p in children)  # each in its own process group
        sock_dir = body_json(get(proxy.port, "/server-proxy/api/servers/sock"))["unix_socket"].rsplit("/", 1)[0]
    finally:
        code = proxy.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM), proxy.log_text()[-2000:]  # twistd re-raises the signal after a clean stop
    for p in children:
        assert not alive(p), f"child {p} outlived the proxy"
        assert group_members(p) == []
    assert not os.path.exists(sock_dir)
    log = proxy.log_text()
    assert "[toy] toy server pid" in log  # child output is logged, tagged with its name


def test_sigkill_of_the_proxy_still_leaves_no_child(tmp_path):
    """Even a proxy that cannot clean up (SIGKILL) takes its servers with it (Linux death signal)."""
    proxy = ProxyProcess("project", ["--config", CONFIG, "--no-entry-points"], env={"TOY_STATE": str(tmp_path)})
    try:
        toy = body_json(get(proxy.port, "/toy/"))["pid"]
        assert alive(toy)
    finally:
        proxy.stop(signal.SIGKILL)
    assert wait_until(lambda: not alive(toy), 5), "timed out waiting for the server to die with its proxy"
