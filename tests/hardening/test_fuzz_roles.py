"""Arbitrary bytes at every live role (hypothesis): the process stays up, answers
the next well-formed request, never answers with a traceback, and leaks no
file descriptor."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.live_roles import ROLE_NAMES, LiveRoles, send, status_of
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    roles = LiveRoles(tmp_path_factory.mktemp("live"))
    yield roles
    roles.close()


PIECES = [b"GET ", b"POST ", b"/", b"%2e", b"%2f", b"..", b"?", b" HTTP/1.1", b" HTTP/1.0", b"\r\n", b"\n", b"\r",
          b"Host: x\r\n", b"Content-Length: ", b"Transfer-Encoding: chunked\r\n", b"Connection: upgrade\r\n",
          b"Upgrade: websocket\r\n", b"0\r\n\r\n", b"5\r\nhello\r\n", b"\x00", b"\xff", b" ", b":", b"\t",
          b"Expect: 100-continue\r\n", b"Cookie: remember_me=x\r\n", b"\r\n\r\n"]

#: raw bytes, and bytes built from HTTP-shaped pieces (much likelier to reach deep parser states)
INPUTS = st.one_of(
    st.binary(min_size=1, max_size=600),
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=8)), min_size=1, max_size=40).map(b"".join),
)


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_arbitrary_bytes_never_hurt_a_role(live, name):
    role = live[name]
    good = role.good() if role.forwards else b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert status_of(send(role, good)[0]) == 200  # warm: pooled backend connections count in the baseline
    baseline = role.proxy.fd_count()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=INPUTS)
    def check(data):
        answer, _ = send(role, data, timeout=1.0, shut=True)
        assert b"Traceback" not in answer and b"File \"" not in answer
        if answer:
            assert answer.startswith(b"HTTP/1.1 "), answer[:100]
        assert role.proxy.proc.poll() is None, "the role died"

    check()
    data, _ = send(role, good)
    assert status_of(data) == 200
    assert wait_until(lambda: role.proxy.fd_count() <= baseline, 15), (role.proxy.fd_count(), baseline)
    assert "Unhandled Error" not in role.proxy.log_text() and "Traceback" not in role.proxy.log_text()
