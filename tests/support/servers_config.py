"""A ``jupyter_server_config.py``-style config for the supervised-server tests.

Run by the proxy with ``c`` bound; paths come from the environment the test sets
(``TOY_STATE``: a private directory for pid records and sockets).
"""

import os
import sys

STATE = os.environ["TOY_STATE"]
TOY = [sys.executable, "-m", "tests.support.toy_server"]
ICON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icons", "toy.svg")


def toy_command(port):  # declares only ``port``: gets only that
    return TOY + ["--port", str(port), "--record", os.path.join(STATE, "callable.pids")]


def toy_env(port, base_url):
    return {"TOY_FROM_CALLABLE": "p={port} b={base_url}", "TOY_DIRECT": str(port)}


def shout(response, path):
    response.body = response.body.replace(b'"pid"', b'"PID"')
    response.headers["X-Rewritten"] = "yes " + path


def only_get(method):
    return method == "GET"


c.ServerProxy.servers = {
    "pyhttp": {
        "command": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", STATE, "{port}"],
        "timeout": 20,
        "launcher_entry": {"title": "Python HTTP", "icon_path": ICON},
    },
    "toy": {
        "command": TOY + ["--port", "{port}", "--record", os.path.join(STATE, "toy.pids")],
        "timeout": 20,
        "environment": {"TOY_PORT": "{port}", "TOY_BRACES": "{{literal}}", "TOY_BASE": "{base_url}"},
        "request_headers_override": {"X-Toy-Override": "port {port}", "User-Agent": "overridden"},
        "mappath": {"/mapped": "/was-mapped"},
        "new_browser_tab": False,
    },
    "callable": {
        "command": toy_command,
        "environment": toy_env,
        "timeout": 20,
        "mappath": lambda path: "/m" + path,
        "launcher_entry": {"enabled": False},
    },
    "absolute": {
        "command": TOY + ["--port", "{port}"],
        "absolute_url": True,
        "timeout": 20,
    },
    "sock": {
        "command": TOY + ["--unix", "{unix_socket}", "--record", os.path.join(STATE, "sock.pids")],
        "unix_socket": True,
        "timeout": 20,
    },
    "fixedsock": {
        "command": TOY + ["--unix", "{unix_socket}"],
        "unix_socket": os.path.join(STATE, "fixed.sock"),
        "timeout": 20,
    },
    "once": {  # exits after the readiness probe and one request
        "command": TOY + ["--port", "{port}", "--exit-after", "2", "--record", os.path.join(STATE, "once.pids")],
        "timeout": 20,
    },
    "slow": {
        "command": TOY + ["--port", "{port}", "--delay", "0.7", "--record", os.path.join(STATE, "slow.pids")],
        "timeout": 20,
    },
    "never": {
        "command": TOY + ["--port", "{port}", "--delay", "600", "--record", os.path.join(STATE, "never.pids")],
        "timeout": 1.5,
    },
    "crash": {
        "command": [sys.executable, "-c", "import sys; sys.exit(3)"],
        "timeout": 30,
    },
    "missing": {
        "command": ["/nonexistent/cocalcproxy-test-binary", "{port}"],
        "timeout": 30,
    },
    "rewrite": {
        "command": TOY + ["--port", "{port}"],
        "rewrite_response": [shout],
        "timeout": 20,
    },
    "quiet": {
        "command": TOY + ["--port", "{port}"],
        "update_last_activity": False,
        "timeout": 20,
    },
    "picky": {
        "command": TOY + ["--port", "{port}"],
        "update_last_activity": only_get,
        "exclude_last_activity_patterns": [r".*/picky/metrics"],
        "timeout": 20,
    },
    "raw": {
        "command": TOY + ["--port", "{port}", "--raw"],
        "raw_socket_proxy": True,
        "timeout": 20,
    },
    "fixedport": {
        "command": TOY + ["--port", "{port}"],
        "port": int(os.environ.get("TOY_FIXED_PORT", "0")),
        "timeout": 20,
    },
    "v6only": {  # binds only the IPv6 loopback
        "command": [sys.executable, "-m", "tests.support.toy_server", "--port", "{port}", "--ipv6"],
        "timeout": 20,
    },
    "wsecho": {
        "command": [sys.executable, "-m", "tests.support.ws_echo_server", "--port", "{port}"],
        "timeout": 20,
    },
    "wsunix": {
        "command": [sys.executable, "-m", "tests.support.ws_echo_server", "--unix", "{unix_socket}"],
        "unix_socket": True,
        "timeout": 20,
    },
    "extrewrite": {  # the test's in-process backend, responses rewritten
        "port": int(os.environ.get("TOY_EXTERNAL_PORT", "1")),
        "rewrite_response": [shout],
    },
    "external": {
        "port": int(os.environ.get("TOY_EXTERNAL_PORT", "1")),
    },
}
