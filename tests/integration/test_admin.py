"""``cocalcproxy-admin`` as operators run it (a child process), on SQLite and on PostgreSQL:
every command, what it stores (hashes only), and its errors (one line, no traceback)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid

import pytest

from cocalcproxy.registry.database import Database
from tests.support import postgres
from tests.support.procs import REPO, child_env, run_twistd

PID = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def admin(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cocalcproxy.admin", "--database", url, *args], capture_output=True,
                          text=True, timeout=60, env=child_env(), cwd=REPO)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('admin') / 'hub.sqlite3'}"
        return
    server = postgres.PostgresServer("admin")
    yield server.url
    server.close()


def rows(url: str, sql: str, args=()):
    db = Database.parse(url)
    conn = db.connect()
    try:
        return conn.execute(db.sql(sql), args).fetchall()
    finally:
        conn.close()


def test_every_command(url):
    assert admin(url, "init").returncode == 0
    assert admin(url, "init").returncode == 0  # idempotent
    assert admin(url, "add-host", "h1", "http://10.0.0.5:9001").returncode == 0
    assert admin(url, "add-host", "h1", "https://h1.example:9443").returncode == 0  # changes the URL
    assert [tuple(r) for r in rows(url, "SELECT host_id, url FROM project_hosts")] == [("h1", "https://h1.example:9443")]
    owner = admin(url, "add-account").stdout.strip()
    assert str(uuid.UUID(owner)) == owner
    other = str(uuid.uuid4())
    made = admin(url, "add-account", other, "--admin")
    assert made.returncode == 0 and made.stdout == other + "\n"  # one line: ACCOUNT=$(... add-account --admin)
    assert admin(url, "add-project", PID, "--owner", owner).returncode == 0
    assert admin(url, "add-collaborator", PID, other, "--group", "viewer").returncode == 0
    users = Database.parse(url).users(rows(url, "SELECT users FROM projects WHERE project_id = ?", (PID,))[0][0])
    assert users == {owner: {"group": "owner"}, other: {"group": "viewer"}}
    assert admin(url, "remove-collaborator", PID, other).returncode == 0
    assert admin(url, "place", PID, "h1").returncode == 0
    assert str(rows(url, "SELECT host_id FROM projects WHERE project_id = ?", (PID,))[0][0]) == "h1"
    assert admin(url, "stop", PID).returncode == 0
    assert rows(url, "SELECT host_id FROM projects WHERE project_id = ?", (PID,))[0][0] is None
    assert admin(url, "ban", other).returncode == 0 and admin(url, "unadmin", other).returncode == 0
    groups, banned = rows(url, "SELECT groups, banned FROM accounts WHERE account_id = ?", (other,))[0]
    assert Database.parse(url).groups(groups) == [] and bool(banned)
    session = admin(url, "new-session", owner, "--days", "2")
    secret = session.stdout.strip()
    assert "remember_me" in session.stderr and len(secret) > 30
    stored = rows(url, "SELECT hash FROM remember_me")
    assert [r[0] for r in stored] == [hashlib.sha256(secret.encode()).hexdigest()]  # only the hash
    key = admin(url, "new-api-key", owner, "--project", PID).stdout.strip()
    assert str(rows(url, "SELECT project_id FROM api_keys")[0][0]) == PID
    assert admin(url, "revoke-api-key", key).stdout.strip() == "1 revoked"
    assert admin(url, "revoke-session", "--account", owner).stdout.strip() == "1 revoked"
    assert rows(url, "SELECT count(*) FROM remember_me")[0][0] == 0
    assert admin(url, "remove-host", "h1").returncode == 0


@pytest.mark.parametrize("args, message", [
    (("place", PID, "nosuchhost"), "no such host: nosuchhost"),
    (("remove-host", "nosuchhost"), "no such host: nosuchhost"),
    (("stop", "00000000-0000-4000-8000-000000000000"), "no such project"),
    (("new-session", PID, "--days", "0"), "must be more than 0 and fewer than a million days"),
    (("new-session", PID, "--days", "-1"), "must be more than 0 and fewer than a million days"),
    (("new-session", PID, "--days", "inf"), "must be more than 0 and fewer than a million days"),
    (("new-api-key", PID, "--days", "0"), "must be more than 0 and fewer than a million days"),
    (("new-session", PID, "--cookie-name", "a;b"), "--cookie-name: not a cookie name"),
    (("new-session", PID, "--base-url", "/a?b"), "--base-url: must be a plain path"),
    (("add-host", "h", "ftp://x"), "not a host URL"),
    (("add-project", "not-a-uuid"), "not a UUID"),
])
def test_refused_commands_say_why_in_one_line(url, args, message):
    admin(url, "init")
    r = admin(url, *args)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr


def test_the_printed_cookie_name_follows_the_hubs_rule(url):
    """``--base-url foo`` is the hubs' ``/foo/``: the cookie is ``%2Ffooremember_me``."""
    admin(url, "init")
    owner = admin(url, "add-account").stdout.strip()
    r = admin(url, "new-session", owner, "--base-url", "foo", "--cookie-name", "sid")
    assert r.returncode == 0 and "(the cookie's name: %2Ffoosid)" in r.stderr


def test_a_missing_sqlite_file_is_named(tmp_path):
    r = admin(f"sqlite:///{tmp_path / 'none.sqlite3'}", "add-account")
    assert r.returncode == 2 and "no such file" in r.stderr and "init" in r.stderr
    r = admin("mysql://x", "init")
    assert r.returncode == 2 and "use postgresql://" in r.stderr


def test_the_hub_needs_its_database(tmp_path):
    missing = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    r = run_twistd(["hub", "--listen", "tcp:0:interface=127.0.0.1", "--database", missing])
    assert r.returncode == 2 and "--init-db" in r.stderr
    r = run_twistd(["hub", "--database", "nope://x"])
    assert r.returncode == 2 and "--database: 'nope://x'" in r.stderr
    r = run_twistd(["hub", "--database", missing, "--fallback", "http://a/b"])
    assert r.returncode == 2 and "--fallback" in r.stderr
