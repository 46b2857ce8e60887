"""Server options (SPEC §4, seed 004): validation, templates, callables, mappath,
and the request_headers_override head rewrite."""

from __future__ import annotations

import re

import pytest

from cocalcproxy.http1.head import parse_request_head
from cocalcproxy.routing.callables import call_with_declared
from cocalcproxy.routing.headers import Peer, request_head_bytes
from cocalcproxy.supervise.spec import RESERVED_NAMES, SpecError, map_path, parse_server, resolve


def spec(**options):
    return parse_server("srv", {"command": ["run", "{port}"], **options})[0]


def test_defaults_follow_the_seed():
    s = spec()
    assert s.timeout == 5.0 and s.absolute_url is False and s.port == 0 and s.unix_socket is None
    assert s.new_browser_tab is True and s.update_last_activity is True and s.raw_socket_proxy is False
    e = s.launcher_entry
    assert (e.enabled, e.title, e.path_info, e.category, e.icon_path) == (True, "srv", "srv/", "Notebook", None)


def test_templates_and_brace_escapes():
    s = spec(command=["run", "--port={port}", "--sock={unix_socket}", "--base={base_url}", "{{x}}"],
             environment={"A": "{port}", "B": "{{y}}"}, request_headers_override={"X-P": "{port}{base_url}"})
    r = resolve(s, 8123, "", "/p/")
    assert r.argv == ["run", "--port=8123", "--sock=", "--base=/p/", "{x}"]
    assert r.environment == {"A": "8123", "B": "{y}"}
    assert r.headers == ((b"X-P", b"8123/p/"),)


def test_callables_get_only_declared_arguments():
    seen = {}

    def command(port):
        seen["command"] = port
        return ["run", "{port}", "{{lit}}"]

    def environment(base_url, unix_socket):
        seen["env"] = (base_url, unix_socket)
        return {"E": "{base_url}"}

    def headers():
        return {"X-None": "n"}

    r = resolve(spec(command=command, environment=environment, request_headers_override=headers), 9, "/s", "/b/")
    assert seen == {"command": 9, "env": ("/b/", "/s")}
    assert r.argv == ["run", "9", "{lit}"] and r.environment == {"E": "/b/"} and r.headers == ((b"X-None", b"n"),)


def test_callable_result_is_templated_once():
    r = resolve(spec(command=lambda: ["{{port}}", "{port}"]), 5, "", "/")
    assert r.argv == ["{port}", "5"]


def test_call_with_declared_passes_everything_to_var_keyword():
    assert call_with_declared(lambda **kw: sorted(kw), {"a": 1, "b": 2}) == ["a", "b"]
    assert call_with_declared(lambda a, b=3: (a, b), {"a": 1, "c": 4}) == (1, 3)


def test_call_with_declared_takes_unhashable_callables():
    class Unhashable:
        __hash__ = None

        def __call__(self, path):
            return path

    assert call_with_declared(Unhashable(), {"path": "/x", "query": ""}) == "/x"


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES) + ["", "a/b", "..", "a%2fb"])
def test_reserved_and_bad_names(name):
    with pytest.raises(SpecError):
        parse_server(name, {"command": ["x"]})


@pytest.mark.parametrize("options, key", [
    ({"command": "x"}, "command"),
    ({"command": ["x", 1]}, "command"),
    ({"command": ["x", "{nope}"]}, "command"),
    ({"command": ["x", "{"]}, "command"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": True}, "timeout"),
    ({"environment": ["A=1"]}, "environment"),
    ({"environment": {"A": 1}}, "environment"),
    ({"port": -1}, "port"),
    ({"port": "80"}, "port"),
    ({"unix_socket": 5}, "unix_socket"),
    ({"mappath": {"/": 1}}, "mappath"),
    ({"launcher_entry": []}, "launcher_entry"),
    ({"launcher_entry": {"title": 3}}, "launcher_entry.title"),
    ({"new_browser_tab": "yes"}, "new_browser_tab"),
    ({"request_headers_override": {"Bad Name": "v"}}, "request_headers_override"),
    ({"request_headers_override": {"X": "a\r\nb"}}, "request_headers_override"),
    ({"update_last_activity": "yes"}, "update_last_activity"),
    ({"exclude_last_activity_patterns": "x"}, "exclude_last_activity_patterns"),
    ({"exclude_last_activity_patterns": ["("]}, "exclude_last_activity_patterns"),
    ({"rewrite_response": [1]}, "rewrite_response"),
    ({"raw_socket_proxy": 1}, "raw_socket_proxy"),
])
def test_errors_name_the_server_and_key(options, key):
    with pytest.raises(SpecError) as e:
        parse_server("srv", {"command": ["x"], **options})
    assert "'srv'" in str(e.value) and key in str(e.value)


def test_no_command_needs_a_port_or_socket():
    with pytest.raises(SpecError, match="port"):
        parse_server("ext", {})
    assert parse_server("ext", {"port": 8888})[0].supervised is False
    assert parse_server("ext", {"unix_socket": "/run/x.sock"})[0].supervised is False
    with pytest.raises(SpecError, match="unix_socket"):
        parse_server("ext", {"unix_socket": True})


def test_unknown_keys_warn_but_work():
    s, warnings = parse_server("srv", {"command": ["x"], "frobnicate": 1, "progressive": True})
    assert warnings == ["server 'srv': unknown key 'frobnicate' ignored"]
    assert s.command == ["x"]


def test_mappath_dict_and_callable():
    assert map_path(spec(mappath={"/": "/lab"}), "/") == "/lab"
    assert map_path(spec(mappath={"/": "/lab"}), "/x") == "/x"
    assert map_path(spec(mappath=lambda path: "/pre" + path), "/x") == "/pre/x"


def test_patterns_compiled_and_rewriters_listed():
    f = lambda response: None  # noqa: E731
    s = spec(exclude_last_activity_patterns=[r"/api/.*"], rewrite_response=f)
    assert s.exclude_last_activity_patterns[0].match("/api/x") and isinstance(s.exclude_last_activity_patterns[0], re.Pattern)
    assert s.rewrite_response == (f,)


def test_callable_failure_is_a_spec_error():
    def boom():
        raise ValueError("no")

    with pytest.raises(SpecError, match="command"):
        resolve(spec(command=boom), 1, "", "/")


def test_override_headers_replaces_same_named_and_keeps_framing():
    req = parse_request_head(b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: a\r\nuser-agent: b\r\nContent-Length: 3\r\n")
    overrides = ((b"User-Agent", b"z"), (b"X-New", b"1"), (b"Content-Length", b"99"), (b"X-Forwarded-Proto", b"https"))
    out = request_head_bytes(req, b"/", Peer(b"", True), None, overrides)
    assert out == (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Forwarded-Host: h\r\n"
                   b"User-Agent: z\r\nX-New: 1\r\nX-Forwarded-Proto: https\r\n\r\n")
