"""Role ``hub``: the TLS-terminating, authenticating edge (SPEC §6).

``B <project_id>/…``: authenticate (session cookie, ``api_key`` cookie, Bearer
or Basic API key), authorise (owner, collaborator or admin), find the host the
project runs on, and forward there with the path unchanged — WebSocket
upgrades included, credentials removed, ``X-CoCalc-Hub-Secret`` added.  The
database is PostgreSQL (shared by many hubs) or SQLite (one machine).
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.logger import Logger

from ..services import RoleServices
from .options import HubConfig, Options

NAME = "hub"
DESCRIPTION = "TLS edge: collaborators-only access to /<project_id>/... on the project's host (PostgreSQL or SQLite)."

log = Logger()


class DatabaseService(Service):
    """The connection pool and the change listener, for as long as the role runs."""

    def __init__(self, pool, listener) -> None:
        self.pool = pool
        self.listener = listener

    def startService(self) -> None:
        super().startService()
        self.listener.start()

    def stopService(self):
        super().stopService()
        self.listener.stop()
        self.pool.close()


class TLSCreators:
    """One verified client TLS creator per project host name (``--host-ca``)."""

    def __init__(self, ca_path: str | None, cert_path: str | None = None, key_path: str | None = None) -> None:
        from ...net.tls import client_certificate

        self.ca_path = ca_path
        self.certificate = client_certificate(cert_path, key_path) if cert_path else None
        self.creators: dict[str, object] = {}

    def __call__(self, hostname: str):
        creator = self.creators.get(hostname)
        if creator is None:
            from ...net.tls import client_creator

            creator = self.creators[hostname] = client_creator(hostname, self.ca_path, self.certificate)
        return creator


def make_service(config: HubConfig, reactor):
    from ...auth.credentials import CookieNames
    from ...auth.secrets import read_secrets
    from ...registry.database import Database
    from ...registry.hub_schema import create_schema
    from ...registry.hub_store import HubStore
    from ...registry.invalidation import PostgresListener, SqlitePoller
    from ...routing.hub import HubRouting
    from .router import HubRouter

    database = Database.parse(config.database)
    if config.init_db:
        try:
            create_schema(database)
        except Exception as e:  # noqa: BLE001 - the database's own error: one line, no traceback
            raise SystemExit(f"cocalcproxy hub: --init-db: cannot create the schema in {database}: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
        log.info("schema ready in {db}", db=str(database))
    pool = database.pool(reactor, config.db_connections)
    tls_for = TLSCreators(config.host_ca, config.host_client_cert, config.host_client_key)
    routing = HubRouting(config.common.base_url.encode("ascii"),
                         CookieNames.for_base(config.common.base_url, config.cookie_name),
                         config.fallback, tls_for(config.fallback.host) if config.fallback and config.fallback.https
                         else None)
    secrets = read_secrets(config.hub_secret_file) if config.hub_secret_file else None
    router = HubRouter(routing, HubStore(database, pool), reactor, secret=secrets[0] if secrets else None,
                       allow_ttl=config.auth_cache_ttl, deny_ttl=config.auth_deny_ttl,
                       placement_ttl=config.placement_ttl, tls_for=tls_for)
    if database.postgres:
        listener = PostgresListener(database, reactor, router.invalidate, router.hearing)
    else:
        listener = SqlitePoller(database.path, reactor, router.invalidate, router.hearing)
    services = RoleServices(reactor, config.common)
    DatabaseService(pool, listener).setServiceParent(services.top)
    services.listen(router.route)
    if config.hub_secret_file:
        def reload_secret() -> None:
            router.secret = read_secrets(config.hub_secret_file)[0]

        services.reloader.add("hub secret", reload_secret)
    return services.top


__all__ = ["DESCRIPTION", "NAME", "Options", "make_service"]
