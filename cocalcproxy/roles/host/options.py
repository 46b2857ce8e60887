"""The host role's options and its frozen config (SPEC §5)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from twisted.python import usage

from ..common import COMMON_OPTS, CommonConfig, Opt, OptionError, RoleOptions


def readable_file(text: str) -> str:
    if not os.path.isfile(text):
        raise OptionError(f"no such file: {text}")
    return text


@dataclass(frozen=True)
class HostConfig:
    common: CommonConfig
    registry: str
    hub_secret_file: str | None = None
    client_ca: str | None = None


class Options(RoleOptions):
    """The project-host proxy (SPEC §5)."""

    synopsis = "host --registry PATH.sqlite3 [--hub-secret-file FILE] [--listen tcp:9001] [options]"
    longdesc = ("Project-host proxy: /<project_id>/… goes to 127.0.0.1:<http_port> of the project's container, "
                "from an SQLite registry this proxy only reads (changes are seen within a second); the path is "
                "forwarded unchanged.")
    default_listen = ("tcp:9001",)
    OPTIONS = COMMON_OPTS + (
        Opt("registry", "PATH", "The project registry: an SQLite file with a table "
            "projects(project_id, state, http_port), written by the project-host manager.", convert=readable_file),
        Opt("hub-secret-file", "FILE", "Every request must carry X-CoCalc-Hub-Secret equal to a line of this file "
            "(else 403); the header is removed before forwarding. SIGHUP reads it again.", convert=readable_file),
        Opt("client-ca", "FILE", "With --https-*: clients must present a certificate signed by this CA "
            "(mutual TLS between hubs and hosts).", convert=readable_file),
    )

    def postOptions(self) -> None:
        super().postOptions()
        if not self["registry"]:
            raise usage.UsageError("--registry is required: the SQLite file of this host's projects")
        if self["client-ca"] and not self["https-key"]:
            raise usage.UsageError("--client-ca needs --https-key and --https-cert (it is checked during the TLS handshake)")
        if self["client-ca"]:
            self._check_tls(self["client-ca"])
        from ...registry.host_sqlite import HostRegistry, RegistryError

        try:
            HostRegistry(self["registry"], clock=None).stop()  # readable now; the service reads it again
        except RegistryError as e:
            raise usage.UsageError(str(e)) from None
        if self["hub-secret-file"]:
            from ...auth.secrets import SecretFileError, read_secrets

            try:
                read_secrets(self["hub-secret-file"])
            except SecretFileError as e:
                raise usage.UsageError(str(e)) from None

    def config(self) -> HostConfig:
        common = replace(self.common(), tls_client_ca=self["client-ca"])
        return HostConfig(common, self["registry"], self["hub-secret-file"], self["client-ca"])
