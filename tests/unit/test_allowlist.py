"""``host_allowlist`` (cocalcproxy/routing/allowlist.py, SPEC §4)."""

from __future__ import annotations

import pytest

from cocalcproxy.routing.allowlist import DEFAULT_ALLOWLIST, HostAllowlist


@pytest.mark.parametrize(
    "host,allowed",
    [
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("[::1]", False),
        ("example.org", False),
    ],
)
def test_default_allowlist(host: str, allowed: bool) -> None:
    assert DEFAULT_ALLOWLIST == ("localhost", "127.0.0.1")
    assert HostAllowlist().allows(host) is allowed


@pytest.mark.parametrize(
    "patterns,host,allowed",
    [
        (["*.example.org"], "a.example.org", True),
        (["*.example.org"], "a.b.example.org", True),
        (["*.example.org"], "A.EXAMPLE.ORG", True),
        (["*.Example.ORG"], "a.example.org", True),
        (["*.example.org"], "example.org", False),
        (["*.example.org"], "a.example.org.evil.com", False),
        (["*.example.org"], "aexample.org", False),
        (["db?"], "db1", True),
        (["db?"], "db10", False),
        (["10.0.0.*"], "10.0.0.7", True),
        (["10.0.0.*"], "10.0.1.7", False),
        (["host[12]"], "host2", True),
        (["host[12]"], "host3", False),
        (["::1"], "[::1]", True),
        (["[::1]"], "[::1]", True),
        (["fe80::*"], "[fe80::1]", True),
        (["::1"], "[::2]", False),
        ([], "localhost", False),
        (["*"], "anything.at.all", True),
    ],
)
def test_patterns(patterns, host: str, allowed: bool) -> None:
    assert HostAllowlist(patterns).allows(host) is allowed


def test_callable_gets_handler_and_host() -> None:
    calls = []

    def check(handler, host):
        calls.append((handler, host))
        return host.endswith(".internal")

    allowlist = HostAllowlist(check)
    handler = object()
    assert allowlist.allows("db.internal", handler) is True
    assert allowlist.allows("db.external", handler) is False
    assert calls == [(handler, "db.internal"), (handler, "db.external")]


def test_callable_result_is_made_a_bool() -> None:
    assert HostAllowlist(lambda handler, host: 1).allows("x") is True
    assert HostAllowlist(lambda handler, host: None).allows("x") is False


def test_callable_that_raises_denies() -> None:
    def broken(handler, host):
        raise RuntimeError("config bug")

    assert HostAllowlist(broken).allows("localhost") is False


@pytest.mark.parametrize("spec", ["localhost", b"localhost", ["ok", 3], [None]])
def test_bad_specs_are_rejected(spec) -> None:
    with pytest.raises(TypeError):
        HostAllowlist(spec)


def test_tuple_and_generator_specs() -> None:
    assert HostAllowlist(("a", "b")).patterns == ("a", "b")
    assert HostAllowlist(p for p in ["X"]).patterns == ("x",)
