"""Where servers come from: --config (Python, JSON, TOML) and entry points (SPEC §4).

Includes a real jupyter-server-proxy package from PyPI (``hello-jupyter-proxy``,
a unix-socket server registered under ``jupyter_serverproxy_servers``) served
unchanged, and a fake distribution in ``tests/support/entrypoints`` with good
and broken entry points.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.support.procs import REPO, ProxyProcess, run_twistd
from tests.support.waiting import wait_until
from tests.support.wire import get

EP_PATH = str(REPO / "tests" / "support" / "entrypoints")
EP_ENV = {"PYTHONPATH": f"{REPO}{os.pathsep}{EP_PATH}"}


@pytest.fixture(scope="module")
def ep_proxy():
    p = ProxyProcess("project", ["--config", str(REPO / "tests" / "support" / "servers_clash.json"), "--kill-grace", "1"],
                     env=EP_ENV)
    yield p
    p.stop()


def test_real_pypi_package_served_unchanged(ep_proxy):
    answer = get(ep_proxy.port, "/hello/some/path")
    assert answer.status == 200, answer.body[:300]
    assert b"<h1>Hello Jupyter-server-proxy</h1>" in answer.body
    assert b"Request path is <code>/some/path</code>" in answer.body
    info = json.loads(get(ep_proxy.port, "/server-proxy/api/servers/hello").body)
    assert info["unix_socket"].endswith("/socket") and info["port"] is None


def test_entry_point_server(ep_proxy):
    seen = json.loads(get(ep_proxy.port, "/epgood/x").body)
    assert seen["path"] == "/x" and seen["env"]["TOY_WHO"] == "entry point"


def test_config_wins_over_entry_point(ep_proxy):
    seen = json.loads(get(ep_proxy.port, "/clash/").body)
    assert seen["env"]["TOY_WHO"] == "config"


def test_broken_entry_points_are_skipped_with_a_warning(ep_proxy):
    for name in ("epbroken", "epraises", "epbadcfg"):
        assert get(ep_proxy.port, f"/{name}/").status == 404
    log = ep_proxy.log_text()
    assert "skipping entry point 'epbroken'" in log and "ModuleNotFoundError" in log
    assert "skipping entry point 'epraises'" in log and "this package is broken" in log
    assert "skipping entry point 'epbadcfg'" in log and "timeout" in log
    names = {s["name"] for s in json.loads(get(ep_proxy.port, "/server-proxy/servers-info").body)["server_processes"]}
    assert {"epgood", "clash", "hello"} <= names and not names & {"epbroken", "epraises", "epbadcfg"}


def test_no_entry_points(make_proxy):
    proxy = make_proxy("--no-entry-points", env=EP_ENV)
    assert get(proxy.port, "/epgood/").status == 404
    assert get(proxy.port, "/hello/").status == 404
    assert json.loads(get(proxy.port, "/server-proxy/servers-info").body) == {"server_processes": []}


# ------------------------------------------------------------ config files
def test_toml_config(tmp_path, make_proxy):
    cfg = tmp_path / "servers.toml"
    cfg.write_text(
        '[servers.tomly]\n'
        'command = ["python3", "-m", "tests.support.toy_server", "--port", "{port}"]\n'
        'timeout = 20\n'
        '[servers.tomly.launcher_entry]\ntitle = "From TOML"\n'
    )
    proxy = make_proxy("--config", str(cfg), "--no-entry-points")
    assert json.loads(get(proxy.port, "/tomly/t").body)["path"] == "/t"
    info = json.loads(get(proxy.port, "/server-proxy/servers-info").body)
    assert info["server_processes"][0]["launcher_entry"]["title"] == "From TOML"


def test_existing_jupyter_server_config_section_works(tmp_path, make_proxy):
    cfg = tmp_path / "jupyter_server_config.py"
    cfg.write_text(
        "import sys\n"
        "c = get_config()  # noqa\n"
        "c.ServerApp.ip = '0.0.0.0'  # other sections are ignored\n"
        "c.ServerProxy.servers = {'pyt': {'command': [sys.executable, '-m', 'tests.support.toy_server', '--port', '{port}'],"
        " 'timeout': 20}}\n"
    )
    proxy = make_proxy("--config", str(cfg), "--no-entry-points")
    assert json.loads(get(proxy.port, "/pyt/").body)["path"] == "/"


@pytest.mark.parametrize("servers, words", [
    ({"server": {"command": ["x"]}}, ["'server'", "reserved"]),
    ({"server-proxy": {"command": ["x"]}}, ["'server-proxy'", "reserved"]),
    ({"healthz": {"command": ["x"]}}, ["'healthz'", "reserved"]),
    ({"ok": {"command": ["x"], "timeout": "soon"}}, ["'ok'", "timeout"]),
    ({"ok": {"command": "x --port {port}"}}, ["'ok'", "command"]),
    ({"ok": {"command": ["x", "{prot}"]}}, ["'ok'", "command", "{prot}"]),
    ({"ok": {"command": ["x"], "environment": {"A": 1}}}, ["'ok'", "environment"]),
    ({"ok": {"command": ["x"], "port": 70000}}, ["'ok'", "port"]),
    ({"ok": {"port": 0}}, ["'ok'", "port"]),
    ({"ok": {"command": ["x"], "launcher_entry": {"enabled": "yes"}}}, ["'ok'", "launcher_entry.enabled"]),
    ({"ok": {"command": ["x"], "exclude_last_activity_patterns": ["("]}}, ["'ok'", "exclude_last_activity_patterns"]),
    ({"ok": {"command": ["x"], "absolute_url": "no"}}, ["'ok'", "absolute_url"]),
])
def test_invalid_config_is_a_startup_error_naming_server_and_key(tmp_path, servers, words):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"servers": servers}))
    r = run_twistd(["project", "--listen", "tcp:0:interface=127.0.0.1", "--config", str(cfg), "--no-entry-points"])
    assert r.returncode != 0
    out = r.stdout + r.stderr
    for w in words:
        assert w in out, out[-1500:]
    assert "Traceback" not in out


def test_base_url_with_project_id(tmp_path, make_proxy):
    pid = "6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f"
    proxy = make_proxy("--project-id", pid, "--base-url", "/foo/", "--config", str(REPO / "tests/support/servers_config.py"),
                       "--no-entry-points", env={"TOY_STATE": str(tmp_path)})
    b = f"/foo/{pid}/"
    seen = json.loads(get(proxy.port, f"{b}toy/x").body)
    assert seen["path"] == "/x" and seen["env"]["TOY_BASE"] == b
    assert dict((k.lower(), v) for k, v in seen["headers"])["x-forwarded-context"] == f"{b}toy"
    info = json.loads(get(proxy.port, f"{b}server-proxy/servers-info").body)
    icon = {s["name"]: s for s in info["server_processes"]}["pyhttp"]["launcher_entry"]["icon_url"]
    assert icon == f"{b}server-proxy/icon/pyhttp"
    assert get(proxy.port, icon).status == 200
    page = get(proxy.port, b).body.decode()
    assert f'href="{b}toy/"' in page
    assert get(proxy.port, "/toy/").status == 404  # only under B


def test_sighup_reloads_servers(tmp_path, make_proxy):
    import signal

    def write(servers):
        cfg.write_text(json.dumps({"servers": servers}))

    def toy(who):
        return {"command": ["python3", "-m", "tests.support.toy_server", "--port", "{port}"],
                "environment": {"TOY_WHO": who}, "timeout": 20}

    cfg = tmp_path / "servers.json"
    write({"old": toy("old"), "kept": toy("v1")})
    proxy = make_proxy("--config", str(cfg), "--no-entry-points", "--kill-grace", "1")
    old_pid = json.loads(get(proxy.port, "/old/").body)["pid"]
    kept_pid = json.loads(get(proxy.port, "/kept/").body)["pid"]
    write({"new": toy("new"), "kept": toy("v2")})
    proxy.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: get(proxy.port, "/new/").status == 200, 10, 0.05), "the new server after SIGHUP"
    assert json.loads(get(proxy.port, "/new/").body)["env"]["TOY_WHO"] == "new"
    assert get(proxy.port, "/old/").status == 404
    assert wait_until(lambda: not os.path.exists(f"/proc/{old_pid}")
                      or "Z" in open(f"/proc/{old_pid}/stat").read().split()[2], 10, 0.05), "the removed server stopped"
    kept = json.loads(get(proxy.port, "/kept/").body)
    assert kept["pid"] == kept_pid and kept["env"]["TOY_WHO"] == "v1"  # not interrupted by the reload
    from tests.support.wire import request

    assert request(proxy.port, b"DELETE /server-proxy/api/servers/kept HTTP/1.1\r\nHost: x\r\n\r\n").status == 204
    assert json.loads(get(proxy.port, "/kept/").body)["env"]["TOY_WHO"] == "v2"  # the next start uses the new options
    cfg.write_text("{broken")
    proxy.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "config not reloaded" in proxy.log_text(), 10, 0.05), "the reload error in the log"
    assert get(proxy.port, "/new/").status == 200  # a broken file changes nothing
    assert proxy.proc.poll() is None
