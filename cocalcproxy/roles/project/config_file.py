"""Load ``--config``: a jupyter-server-proxy style Python file, or JSON / TOML.

Python files run with an object ``c`` (and ``get_config()`` returning it), so an
existing ``jupyter_server_config.py`` section works unchanged:

    c.ServerProxy.servers = {...}
    c.ServerProxy.host_allowlist = ["localhost", "*.example.org"]

JSON and TOML files have the top-level keys ``servers`` and ``host_allowlist``
(no callables there).  Every problem is a ``ConfigError`` naming the file and
the key, which the command line turns into a startup error.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any


class ConfigError(Exception):
    pass


@dataclass
class ProxyFileConfig:
    servers: dict[str, Any] = field(default_factory=dict)
    host_allowlist: Any = None  # None = default list; list of patterns; or a callable


class _Section:
    """An attribute bag: ``c.ServerProxy.servers = …``."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        values = object.__getattribute__(self, "_values")
        if name not in values:
            values[name] = _Section()
        return values[name]

    def __setattr__(self, name: str, value: Any) -> None:
        object.__getattribute__(self, "_values")[name] = value

    def values(self) -> dict:
        return object.__getattribute__(self, "_values")


_KNOWN_KEYS = {"servers", "host_allowlist"}


def load_config(path: str) -> ProxyFileConfig:
    if not os.path.isfile(path):
        raise ConfigError(f"--config: no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".py":
            raw = _load_python(path)
        elif ext == ".json":
            with open(path, "rb") as f:
                raw = json.load(f)
        elif ext == ".toml":
            raw = _load_toml(path)
        else:
            raise ConfigError(f"--config {path}: unknown file type (use .py, .json or .toml)")
    except ConfigError:
        raise
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read: {e.strerror or e}") from None
    except (ValueError, SyntaxError) as e:
        raise ConfigError(f"--config {path}: {type(e).__name__}: {e}") from None
    except Exception as e:  # noqa: BLE001 - user code: report, never crash with a traceback
        raise ConfigError(f"--config {path}: error while running the file: {type(e).__name__}: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: the top level must be a table/object")
    if "ServerProxy" in raw and isinstance(raw["ServerProxy"], dict) and not (_KNOWN_KEYS & raw.keys()):
        raw = raw["ServerProxy"]
    unknown = set(raw) - _KNOWN_KEYS - {"ServerProxy"}
    if unknown and ext != ".py":
        raise ConfigError(f"--config {path}: unknown key(s): {', '.join(sorted(unknown))}")
    servers = raw.get("servers", {}) or {}
    if not isinstance(servers, dict):
        raise ConfigError(f"--config {path}: servers must be a mapping of name to server options")
    allow = raw.get("host_allowlist")
    if allow is not None and not callable(allow):
        if isinstance(allow, (str, bytes)) or not isinstance(allow, (list, tuple)):
            raise ConfigError(f"--config {path}: host_allowlist must be a list of host patterns or a callable")
        for item in allow:
            if not isinstance(item, str):
                raise ConfigError(f"--config {path}: host_allowlist entries must be strings, got {item!r}")
    return ProxyFileConfig(servers=dict(servers), host_allowlist=allow)


def _load_python(path: str) -> dict:
    c = _Section()
    namespace = {"c": c, "get_config": lambda: c, "__file__": path, "__name__": "__cocalcproxy_config__"}
    with open(path, encoding="utf-8") as f:
        source = f.read()
    code = compile(source, path, "exec")
    exec(code, namespace)  # noqa: S102 - the operator's own config file, as jupyter does
    section = c.values().get("ServerProxy")
    if not isinstance(section, _Section):
        return {}
    return {k: v for k, v in section.values().items() if not isinstance(v, _Section)}


def _load_toml(path: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)
