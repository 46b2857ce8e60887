"""The hub role's options and its frozen config (SPEC §6)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from twisted.python import usage

from ...registry.database import DEFAULT_URL, Database, DatabaseURLError
from ...routing.hub import HostTarget, parse_host_url
from ..common import COMMON_OPTS, CommonConfig, Opt, OptionError, RoleOptions, positive_float, positive_int


def database_url(text: str) -> str:
    try:
        Database.parse(text)
    except DatabaseURLError as e:
        raise OptionError(str(e)) from None
    return text


def readable_file(text: str) -> str:
    if not os.path.isfile(text):
        raise OptionError(f"no such file: {text}")
    return text


def cookie_name(text: str) -> str:
    if not text or any(c in text for c in ";,= \t\r\n\"") or not text.isascii():
        raise OptionError(f"not a cookie name: {text!r}")
    return text


def host_url(text: str) -> str:
    if parse_host_url(text) is None:
        raise OptionError(f"expected http://HOST:PORT or https://HOST:PORT, got {text!r}")
    return text


@dataclass(frozen=True)
class HubConfig:
    common: CommonConfig
    database: str = DEFAULT_URL
    init_db: bool = False
    cookie_name: str = "remember_me"
    auth_cache_ttl: float = 60.0
    auth_deny_ttl: float = 5.0
    placement_ttl: float = 5.0
    host_ca: str | None = None
    hub_secret_file: str | None = None
    host_client_cert: str | None = None
    host_client_key: str | None = None
    fallback: HostTarget | None = None
    db_connections: int = 4


class Options(RoleOptions):
    """The TLS-terminating, authenticating edge (SPEC §6)."""

    synopsis = "hub [--database URL] [--https-key K --https-cert C] [--listen tcp:443] [options]"
    longdesc = ("The edge: authenticates users (session cookie or API key), lets only a project's owner, "
                "collaborators and admins through, and forwards /<project_id>/… to the host that runs the "
                "project, path unchanged.")
    default_listen = ("tcp:443",)
    default_trusted = ()
    OPTIONS = COMMON_OPTS + (
        Opt("database", "URL", "postgresql://USER@HOST/DB (several hubs share it) or sqlite:///PATH (one machine).",
            DEFAULT_URL, database_url),
        Opt("init-db", None, "Create the tables (and, on PostgreSQL, the change triggers) if they are missing."),
        Opt("cookie-name", "NAME", "The session cookie (prefixed with the URL-encoded base URL when it is not /).",
            "remember_me", cookie_name),
        Opt("auth-cache-ttl", "SECONDS", "How long an allowed decision is cached (changes reach the cache at once "
            "through the database's change log).", 60.0, positive_float),
        Opt("auth-deny-ttl", "SECONDS", "How long a refused decision is cached.", 5.0, positive_float),
        Opt("placement-ttl", "SECONDS", "How long a project's placement on a host is cached.", 5.0, positive_float),
        Opt("host-ca", "FILE", "CA certificates that https:// project hosts are verified against "
            "(default: the system's trust store).", convert=readable_file),
        Opt("host-client-cert", "FILE", "PEM certificate the hub shows to https:// hosts that require one "
            "(a host's --client-ca). Needs --host-client-key.", convert=readable_file),
        Opt("host-client-key", "FILE", "The unencrypted PEM key of --host-client-cert.", convert=readable_file),
        Opt("hub-secret-file", "FILE", "Send the first line of this file to hosts as X-CoCalc-Hub-Secret. "
            "SIGHUP reads it again.", convert=readable_file),
        Opt("fallback", "URL", "Forward paths that name no project to this web app (http://HOST:PORT); "
            "default: 404.", convert=host_url),
        Opt("db-connections", "N", "Database connections the hub keeps open (threads).", 4, positive_int),
    )

    def postOptions(self) -> None:
        super().postOptions()
        database = Database.parse(self["database"])
        if not database.postgres and not database.exists() and not self["init-db"]:
            raise usage.UsageError(f"--database {database}: no such file; start once with --init-db "
                                   "(or run: cocalcproxy-admin --database URL init)")
        if self["hub-secret-file"]:
            from ...auth.secrets import SecretFileError, read_secrets

            try:
                read_secrets(self["hub-secret-file"])
            except SecretFileError as e:
                raise usage.UsageError(str(e)) from None
        from ...net.tls import TLSFileError, client_certificate, trust_root

        if bool(self["host-client-cert"]) != bool(self["host-client-key"]):
            raise usage.UsageError("--host-client-cert and --host-client-key go together: give both or neither")
        try:
            if self["host-ca"]:
                trust_root(self["host-ca"], "--host-ca")
            if self["host-client-cert"]:
                client_certificate(self["host-client-cert"], self["host-client-key"])
        except TLSFileError as e:
            raise usage.UsageError(str(e)) from None

    def config(self) -> HubConfig:
        return HubConfig(
            common=self.common(),
            database=self["database"],
            init_db=self["init-db"],
            cookie_name=self["cookie-name"],
            auth_cache_ttl=self["auth-cache-ttl"],
            auth_deny_ttl=self["auth-deny-ttl"],
            placement_ttl=self["placement-ttl"],
            host_ca=self["host-ca"],
            hub_secret_file=self["hub-secret-file"],
            host_client_cert=self["host-client-cert"],
            host_client_key=self["host-client-key"],
            fallback=parse_host_url(self["fallback"]) if self["fallback"] else None,
            db_connections=self["db-connections"],
        )
