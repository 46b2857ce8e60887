"""One module per role.  Each exposes ``NAME``, ``DESCRIPTION``, ``Options`` (a
``usage.Options`` subclass) and ``make_service(options, reactor)``; adding a role
is adding a module here and its name to ``ROLE_MODULES``."""

from __future__ import annotations

import importlib

ROLE_MODULES = ("project", "bridge")


def load(name: str):
    return importlib.import_module(f"{__name__}.{name}")
