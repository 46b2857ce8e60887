"""Shared fixtures.  Integration tests run the real proxy as a child process."""

from __future__ import annotations

import pytest

from tests.support import postgres
from tests.support.app_backend import AppBackend
from tests.support.backends import RecordingBackend
from tests.support.procs import ProxyProcess

PROJECT_ID = "6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f"


@pytest.fixture
def backend():
    b = RecordingBackend()
    yield b
    b.close()


@pytest.fixture(scope="module")
def app():
    """The test app (echoes requests, serves bodies), shared by a module's tests."""
    a = AppBackend()
    yield a
    a.close()


@pytest.fixture(scope="module")
def pg():
    """A throwaway PostgreSQL server (initdb/pg_ctl in a temp dir), shared by a module's tests."""
    server = postgres.PostgresServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def project_proxy():
    """A ``project`` role proxy with a project id, shared by a module's tests."""
    p = ProxyProcess("project", ["--project-id", PROJECT_ID])
    yield p
    p.stop()


@pytest.fixture
def make_proxy():
    """Start proxies with custom arguments; all are stopped after the test."""
    started = []

    def start(*args, role: str = "project", **kw) -> ProxyProcess:
        p = ProxyProcess(role, list(args), **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
