"""``free_port``: a port for a supervised server must be free on both loopbacks.

Real sockets on loopback: the point is what the kernel says about the port.
"""

from __future__ import annotations

import socket

import pytest

from cocalcproxy.supervise import process
from cocalcproxy.supervise.process import _free_on_ipv6_loopback, free_port


def _ipv6_loopback_listener() -> socket.socket | None:
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
    except OSError:
        return None
    s.listen(1)
    return s


def test_a_port_held_on_ipv6_loopback_is_not_free():
    s = _ipv6_loopback_listener()
    if s is None:
        pytest.skip("this machine has no ::1")
    with s:
        assert _free_on_ipv6_loopback(s.getsockname()[1]) is False


def test_the_port_returned_binds_on_both_loopbacks():
    port = free_port()
    with socket.socket() as s4:
        s4.bind(("127.0.0.1", port))
    v6 = _ipv6_loopback_listener()
    if v6 is not None:  # the machine has ::1
        v6.close()
        with socket.socket(socket.AF_INET6) as s6:
            s6.bind(("::1", port))


def test_ports_taken_on_ipv6_are_skipped(monkeypatch):
    refused: list[int] = []

    def only_fourth(port: int) -> bool:
        refused.append(port)
        return len(refused) == 4

    monkeypatch.setattr(process, "_free_on_ipv6_loopback", only_fourth)
    assert free_port() == refused[-1]
    assert len(refused) == 4


def test_no_port_free_anywhere_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(process, "_free_on_ipv6_loopback", lambda port: False)
    with pytest.raises(OSError, match="127.0.0.1 and ::1"):
        free_port(attempts=3)
