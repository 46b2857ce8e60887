"""The bridge role's options and its frozen config (SPEC §7)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from twisted.python import usage

from ...routing.addresses import AddressError, parse_endpoint_target
from ..common import COMMON_OPTS, CommonConfig, Opt, OptionError, RoleOptions


def target_text(text: str) -> str:
    """``tcp:HOST:PORT``, ``tcp:[V6]:PORT``, ``unix:/path`` — or another Twisted
    client endpoint string, which is checked when the service is built."""
    try:
        parsed = parse_endpoint_target(text)
    except AddressError as e:
        raise OptionError(str(e)) from None
    if parsed is None:
        from twisted.internet.endpoints import clientFromString

        try:
            clientFromString(None, text)
        except Exception as e:  # noqa: BLE001 - Twisted's parsers raise all kinds of things
            raise OptionError(f"{text!r}: {e}") from None
    return text


def existing_path(text: str) -> str:
    if not os.path.exists(text):
        raise OptionError(f"no such file or directory: {text!r}")
    return text


def directory(text: str) -> str:
    if not os.path.isdir(text):
        raise OptionError(f"not a directory: {text!r}")
    return text


@dataclass(frozen=True)
class BridgeConfig:
    common: CommonConfig
    target: str | None  # --target, as given
    token_file: str | None
    web: str | None


class Options(RoleOptions):
    """WebSocket ↔ raw TCP bridge (SPEC §7).  Exactly one of --target and --token-file."""

    synopsis = "bridge (--target tcp:HOST:PORT|unix:/path | --token-file FILE) [--web DIR] [--listen tcp:6080] [options]"
    longdesc = ("Every WebSocket connection is bridged to one raw TCP or unix-socket connection "
                "(websockify-style; noVNC, VNC servers).")
    default_listen = ("tcp:6080",)
    default_trusted = ()
    OPTIONS = COMMON_OPTS + (
        Opt("target", "ENDPOINT", "Where every WebSocket connection goes: tcp:HOST:PORT, tcp:[IPv6]:PORT, "
            "unix:/path (or another Twisted client endpoint string).", convert=target_text),
        Opt("token-file", "PATH", "websockify-style token file or directory ('token: host:port' or "
            "'token: unix_socket:/path' lines); ?token=NAME picks the target; re-read within 1 s of a change.",
            convert=existing_path),
        Opt("web", "DIR", "Serve files from this directory to non-WebSocket requests (e.g. noVNC); else they get 405.",
            convert=directory),
    )

    def postOptions(self) -> None:
        super().postOptions()
        if bool(self["target"]) == bool(self["token-file"]):
            raise usage.UsageError("give exactly one of --target and --token-file")
        if self["token-file"]:
            from ...registry.tokens import TokenFileError, TokenTable

            try:
                TokenTable(self["token-file"])  # readable now; the service reads it again
            except TokenFileError as e:
                raise usage.UsageError(f"--token-file: {e}") from None

    def config(self) -> BridgeConfig:
        return BridgeConfig(self.common(), self["target"], self["token-file"], self["web"])
