"""SIGHUP for the project role: read ``--config`` and the entry points again.

New servers appear, removed ones are stopped, changed ones take their new
options at their next start (a running process is not interrupted), and the
host allowlist changes for the next request.  A broken file changes nothing:
the error is logged and the old config stays in force.
"""

from __future__ import annotations

from twisted.logger import Logger

from .config_file import ConfigError
from .options import load_servers

log = Logger()


def reload_config(router, supervisor) -> None:
    try:
        config = load_servers(router.config)
    except ConfigError as e:
        log.error("SIGHUP: config not reloaded: {error}", error=str(e))
        raise
    supervisor.update(dict(config.servers))
    router.use(config)
    log.info("SIGHUP: config reloaded; servers: {names}", names=", ".join(sorted(config.servers)) or "none")
