"""One package per role.  Each exposes ``NAME``, ``DESCRIPTION``, ``Options`` (a
``common.RoleOptions`` whose ``config()`` is the role's frozen config) and
``make_service(config, reactor)``.  ``ROLES`` is the one list of them: adding a
role is adding its package and its name here (docs/architecture.md)."""

from __future__ import annotations

import importlib

ROLES = ("project", "host", "hub", "bridge")


def load(name: str):
    return importlib.import_module(f"{__name__}.{name}")
