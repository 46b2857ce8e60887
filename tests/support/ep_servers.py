"""Entry-point targets for the discovery tests (registered by the fake
distribution in ``tests/support/entrypoints``)."""

import sys

TOY = [sys.executable, "-m", "tests.support.toy_server"]


def setup_good():
    return {"command": TOY + ["--port", "{port}"], "environment": {"TOY_WHO": "entry point"}, "timeout": 20}


def setup_raises():
    raise RuntimeError("this package is broken")


def setup_bad_timeout():
    return {"command": TOY + ["--port", "{port}"], "timeout": "soon"}
