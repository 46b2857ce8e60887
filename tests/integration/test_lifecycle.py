"""The real command line: --help, startup errors, graceful stop on SIGTERM."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from tests.support.backends import ScriptedBackend, read_head
from tests.support.procs import ProxyProcess, free_port, run_twistd
from tests.support.waiting import wait_until
from tests.support.wire import connect

PROJECT_OPTIONS = [
    "--listen", "--base-url", "--connect-timeout", "--header-timeout", "--idle-timeout", "--max-header-bytes",
    "--max-connections", "--drain-timeout", "--trusted-proxy", "--project-id", "--config", "--target-host",
]


def test_help_lists_roles_and_every_option():
    top = run_twistd(["--help"])
    assert top.returncode == 0 and "project" in top.stdout
    project = run_twistd(["project", "--help"])
    assert project.returncode == 0
    for option in PROJECT_OPTIONS:
        assert option in project.stdout, option


def test_no_role_is_a_usage_error():
    r = run_twistd([])
    assert r.returncode != 0
    assert "choose a role: project" in r.stdout + r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--listen", "nonsense:1"], "--listen 'nonsense:1'"),
        (["--connect-timeout", "soon"], "--connect-timeout: not a number"),
        (["--max-connections", "0"], "--max-connections: must be at least 1"),
        (["--trusted-proxy", "10.0.0.0/33"], "--trusted-proxy: not an IP address or CIDR network"),
        (["--project-id", "not-a-uuid"], "--project-id: not a UUID"),
        (["--config", "/nonexistent/config.py"], "--config: no such file: /nonexistent/config.py"),
        (["--kill-grace", "abc"], "--kill-grace: not a number: 'abc'"),
        (["--listen", "tcp6:8080:interface=::1"], "colons escaped, e.g. tcp6:8080:interface=\\:\\:1"),
        (["--listen", "tcp:http"], "--listen 'tcp:http': the port must be a number"),
        (["--target-host", "a@b"], "--target-host: not a host name or IP address: 'a@b'"),
    ],
)
def test_bad_options_are_clear_startup_errors(args, message):
    """One line on stderr that names the option (twistd would print its whole help first)."""
    r = run_twistd(["project", *args])
    assert r.returncode == 2
    assert message in r.stderr
    assert r.stderr.count("\n") == 1 and r.stdout == ""
    assert "Traceback" not in r.stderr


def test_config_file_error_names_file_and_key(tmp_path):
    cfg = tmp_path / "proxy.json"
    cfg.write_text('{"host_allowlist": "localhost"}')
    r = run_twistd(["project", "--config", str(cfg)])
    assert r.returncode != 0
    assert f"--config {cfg}: host_allowlist must be a list" in r.stdout + r.stderr


def test_port_in_use_is_a_clear_startup_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_twistd(["project", "--listen", f"tcp:{port}:interface=127.0.0.1"])
    assert r.returncode != 0
    output = r.stdout + r.stderr
    assert f"cannot listen on tcp:{port}:interface=127.0.0.1 (--listen)" in output
    assert "Traceback" not in output


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_sigterm_lets_in_flight_response_finish_then_exits():
    release = threading.Event()

    def slow(conn, number):
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
        release.wait(10)
        conn.sendall(b"-half")

    backend = ScriptedBackend(slow)
    proxy = ProxyProcess("project", ["--drain-timeout", "10"])
    try:
        with connect(proxy.port) as c:
            c.send(f"GET /port/{backend.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            first = c.read_some()
            assert first.endswith(b"first")
            proxy.proc.send_signal(signal.SIGTERM)
            # new connections are refused once the listener has stopped
            assert wait_until(lambda: not accepts(proxy.port), 5, 0.05), "listener still accepting after SIGTERM"
            assert proxy.proc.poll() is None  # still finishing the in-flight response
            release.set()
            rest = c.read_to_eof()
            assert (first + rest).endswith(b"first-half")
        assert proxy.proc.wait(10) in (0, -signal.SIGTERM)  # twistd re-raises the signal after a clean stop
    finally:
        release.set()
        proxy.stop()
        backend.close()


def test_sigterm_cuts_connections_after_drain_timeout():
    """Real-time smoke test; the drain's timing is on a fake clock in
    tests/twisted/test_front.py (test_drain_*)."""
    asked, release = threading.Event(), threading.Event()

    def never_answers(conn, number):
        read_head(conn)
        asked.set()
        release.wait(10)

    backend = ScriptedBackend(never_answers)
    proxy = ProxyProcess("project", ["--drain-timeout", "0.5"])
    try:
        with connect(proxy.port) as c:
            c.send(f"GET /port/{backend.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert asked.wait(5)  # the exchange is in flight
            started = time.monotonic()
            proxy.proc.send_signal(signal.SIGTERM)
            assert c.closed_within(5)
            cut_after = time.monotonic() - started
            assert proxy.proc.wait(10) in (0, -signal.SIGTERM)  # twistd re-raises the signal after a clean stop
            assert 0.45 <= cut_after < 5  # cut at --drain-timeout, not at once and not never
    finally:
        release.set()
        proxy.stop()
        backend.close()


def test_listens_on_several_endpoints_including_unix(tmp_path):
    sock_path = tmp_path / "proxy.sock"
    port2 = free_port()
    proxy = ProxyProcess("project", ["--listen", f"tcp:{port2}:interface=127.0.0.1", "--listen", f"unix:{sock_path}"])
    try:
        for family, addr in ((socket.AF_INET, ("127.0.0.1", proxy.port)), (socket.AF_INET, ("127.0.0.1", port2)),
                             (socket.AF_UNIX, str(sock_path))):
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(addr)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        proxy.stop()


def test_sighup_keeps_the_process_and_its_connections():
    """SIGHUP reloads (SPEC §2); it never ends the process or drops a connection."""
    proxy = ProxyProcess("project", [])
    try:
        with connect(proxy.port) as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_answer().status == 200
            proxy.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: "SIGHUP" in proxy.log_text(), 5, 0.05), proxy.log_text()[-2000:]
            assert proxy.proc.poll() is None
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # the same keep-alive connection
            assert c.read_answer().status == 200
    finally:
        proxy.stop()
