"""cocalcproxy-admin: the hub database's operator tool, so nobody writes SQL by hand.

    cocalcproxy-admin [--database URL] COMMAND [ARGS]

The same --database forms and default as the hub.  Every change is an
ordinary write, so the schema's triggers tell running hubs at once.  A new
session or API key prints its secret once; only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import time
import uuid

from .auth.credentials import CookieNames, secret_hash
from .registry.database import DEFAULT_URL, Database, DatabaseURLError
from .registry.hub_schema import create_schema
from .roles.common import OptionError, base_url
from .roles.hub.options import cookie_name
from .routing.hub import parse_host_url

GROUPS = ("owner", "collaborator", "viewer")


class AdminError(Exception):
    """A refused command; the message says why."""


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 < days < 1e6:  # finite: a date must come out of it
        raise argparse.ArgumentTypeError(f"must be more than 0 and fewer than a million days, got {text!r}")
    return days


def _checked(check):
    """An argparse type from one of the roles' option checks (the same rule as the hubs')."""
    def convert(text: str) -> str:
        try:
            return check(text)
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = check.__name__
    return convert


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


@contextlib.contextmanager
def transaction(db: Database, conn):
    if db.postgres:
        with conn.transaction():
            yield
    else:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


class Admin:
    def __init__(self, db: Database, out=sys.stdout) -> None:
        self.db = db
        self.conn = db.connect("cocalcproxy-admin")
        self.out = out

    def q(self, sql: str, args=()):
        return self.conn.execute(self.db.sql(sql), args)

    def say(self, text: str) -> None:
        print(text, file=self.out)

    # ------------------------------------------------------------- hosts
    def add_host(self, host_id: str, url: str) -> None:
        if parse_host_url(url) is None:
            raise AdminError(f"not a host URL (http://HOST:PORT or https://HOST:PORT): {url!r}")
        with transaction(self.db, self.conn):
            if self.q("SELECT 1 FROM project_hosts WHERE host_id = ?", (host_id,)).fetchone():
                self.q("UPDATE project_hosts SET url = ? WHERE host_id = ?", (url, host_id))
            else:
                self.q("INSERT INTO project_hosts (host_id, url) VALUES (?, ?)", (host_id, url))
        self.say(f"host {host_id}: {url}")

    def remove_host(self, host_id: str) -> None:
        with transaction(self.db, self.conn):
            if not self.q("SELECT 1 FROM project_hosts WHERE host_id = ?", (host_id,)).fetchone():
                raise AdminError(f"no such host: {host_id}")
            self.q("UPDATE projects SET host_id = NULL WHERE host_id = ?", (host_id,))
            self.q("DELETE FROM project_hosts WHERE host_id = ?", (host_id,))
        self.say(f"host {host_id} removed (its projects are no longer placed)")

    # ---------------------------------------------------------- projects
    def _project(self, project_id: str) -> None:
        if not self.q("SELECT 1 FROM projects WHERE project_id = ?", (project_id,)).fetchone():
            self.q("INSERT INTO projects (project_id) VALUES (?)", (project_id,))

    def add_project(self, project_id: str, owner: str | None) -> None:
        with transaction(self.db, self.conn):
            self._project(project_id)
        if owner:
            self.set_member(project_id, owner, "owner")
        self.say(f"project {project_id}")

    def place(self, project_id: str, host_id: str | None) -> None:
        with transaction(self.db, self.conn):
            if host_id is not None and not self.q("SELECT 1 FROM project_hosts WHERE host_id = ?",
                                                  (host_id,)).fetchone():
                raise AdminError(f"no such host: {host_id} (add it with add-host)")
            if host_id is None and not self.q("SELECT 1 FROM projects WHERE project_id = ?", (project_id,)).fetchone():
                raise AdminError(f"no such project: {project_id}")
            self._project(project_id)
            self.q("UPDATE projects SET host_id = ? WHERE project_id = ?", (host_id, project_id))
        self.say(f"project {project_id}: " + (f"on host {host_id}" if host_id else "not placed (stopped)"))

    def set_member(self, project_id: str, account_id: str, group: str | None) -> None:
        with transaction(self.db, self.conn):
            self._project(project_id)
            row = self.q("SELECT users FROM projects WHERE project_id = ?", (project_id,)).fetchone()
            users = self.db.users(row[0])
            if group is None:
                users.pop(account_id, None)
            else:
                users[account_id] = {"group": group}
            self.q("UPDATE projects SET users = ? WHERE project_id = ?", (self.db.json_value(users), project_id))
        self.say(f"project {project_id}: {account_id} " + (f"is {group}" if group else "removed"))

    # ---------------------------------------------------------- accounts
    def _account(self, account_id: str):
        row = self.q("SELECT groups, banned FROM accounts WHERE account_id = ?", (account_id,)).fetchone()
        if row is None:
            self.q("INSERT INTO accounts (account_id) VALUES (?)", (account_id,))
            return [], False
        return self.db.groups(row[0]), bool(row[1])

    def add_account(self, account_id: str | None, admin: bool) -> str:
        account_id = account_id or str(uuid.uuid4())
        with transaction(self.db, self.conn):
            self._account(account_id)
        if admin:
            self.set_admin(account_id, True, quiet=True)
        self.say(account_id)  # the only line: ACCOUNT=$(cocalcproxy-admin add-account)
        return account_id

    def set_admin(self, account_id: str, on: bool, quiet: bool = False) -> None:
        with transaction(self.db, self.conn):
            groups, _ = self._account(account_id)
            groups = sorted(set(groups) | {"admin"}) if on else [g for g in groups if g != "admin"]
            self.q("UPDATE accounts SET groups = ? WHERE account_id = ?", (self.db.groups_value(groups), account_id))
        if not quiet:
            self.say(f"account {account_id}: " + ("admin" if on else "not an admin"))

    def set_banned(self, account_id: str, banned: bool) -> None:
        with transaction(self.db, self.conn):
            self._account(account_id)
            self.q("UPDATE accounts SET banned = ? WHERE account_id = ?", (banned if self.db.postgres else int(banned),
                                                                         account_id))
        self.say(f"account {account_id}: " + ("banned" if banned else "not banned"))

    # ----------------------------------------------------- sessions, keys
    def new_secret(self, table: str, account_id: str, days: float | None, project_id: str | None = None) -> str:
        secret = secrets.token_urlsafe(32)
        expire = self.db.time_value(time.time() + days * 86400) if days is not None else None
        with transaction(self.db, self.conn):
            self._account(account_id)
            if table == "remember_me":
                self.q("INSERT INTO remember_me (hash, account_id, expire) VALUES (?, ?, ?)",
                       (secret_hash(secret.encode()), account_id, expire))
            else:
                self.q("INSERT INTO api_keys (hash, account_id, expire, project_id) VALUES (?, ?, ?, ?)",
                       (secret_hash(secret.encode()), account_id, expire, project_id))
        self.say(secret)
        return secret

    def revoke(self, table: str, secret: str | None, hash_: str | None, account_id: str | None) -> None:
        with transaction(self.db, self.conn):
            if account_id:
                n = self.q(f"DELETE FROM {table} WHERE account_id = ?", (account_id,)).rowcount
            else:
                n = self.q(f"DELETE FROM {table} WHERE hash = ?", (hash_ or secret_hash(secret.encode()),)).rowcount
        self.say(f"{n} revoked")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cocalcproxy-admin", description=__doc__.split("\n\n")[0])
    p.add_argument("--database", default=DEFAULT_URL, metavar="URL",
                   help=f"postgresql://… or sqlite:///PATH (default: {DEFAULT_URL})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("init", help="create the tables and change triggers (idempotent)")
    c = sub.add_parser("add-host", help="add or change a project host: HOST_ID URL")
    c.add_argument("host_id")
    c.add_argument("url")
    sub.add_parser("remove-host", help="remove a host (its projects become unplaced)").add_argument("host_id")
    c = sub.add_parser("add-project", help="add a project (optionally with its owner)")
    c.add_argument("project_id", type=_uuid)
    c.add_argument("--owner", type=_uuid, metavar="ACCOUNT_ID")
    c = sub.add_parser("place", help="run a project on a host: PROJECT_ID HOST_ID")
    c.add_argument("project_id", type=_uuid)
    c.add_argument("host_id")
    sub.add_parser("stop", help="unplace a project (the hub then answers 503)").add_argument("project_id", type=_uuid)
    c = sub.add_parser("add-account", help="add an account (a new id is printed if none is given)")
    c.add_argument("account_id", nargs="?", type=_uuid)
    c.add_argument("--admin", action="store_true")
    for name, text in (("admin", "make an account an admin"), ("unadmin", "take admin away"),
                       ("ban", "ban an account"), ("unban", "lift a ban")):
        sub.add_parser(name, help=text).add_argument("account_id", type=_uuid)
    c = sub.add_parser("add-collaborator", help="PROJECT_ID ACCOUNT_ID [--group owner|collaborator|viewer]")
    c.add_argument("project_id", type=_uuid)
    c.add_argument("account_id", type=_uuid)
    c.add_argument("--group", choices=GROUPS, default="collaborator")
    c = sub.add_parser("remove-collaborator", help="PROJECT_ID ACCOUNT_ID")
    c.add_argument("project_id", type=_uuid)
    c.add_argument("account_id", type=_uuid)
    c = sub.add_parser("new-session", help="a session cookie value for ACCOUNT_ID (printed once)")
    c.add_argument("account_id", type=_uuid)
    c.add_argument("--days", type=_days, default=30.0, help="expires after this many days (default: 30)")
    c.add_argument("--base-url", type=_checked(base_url), default="/",
                   help="the hubs' --base-url, to print the cookie's name")
    c.add_argument("--cookie-name", type=_checked(cookie_name), default="remember_me",
                   help="the hubs' --cookie-name, to print the cookie's name")
    c = sub.add_parser("new-api-key", help="an API key for ACCOUNT_ID (printed once)")
    c.add_argument("account_id", type=_uuid)
    c.add_argument("--project", type=_uuid, metavar="PROJECT_ID", help="valid for this project only")
    c.add_argument("--days", type=_days, help="expires after this many days (default: never)")
    for name, table in (("revoke-session", "remember_me"), ("revoke-api-key", "api_keys")):
        c = sub.add_parser(name, help="by its secret, its --hash, or every one of an --account")
        c.set_defaults(table=table)
        g = c.add_mutually_exclusive_group(required=True)
        g.add_argument("secret", nargs="?")
        g.add_argument("--hash")
        g.add_argument("--account", type=_uuid)
    return p


def run(args, out=sys.stdout) -> None:
    db = Database.parse(args.database)
    if args.command == "init":
        create_schema(db)
        print(f"schema ready in {db}", file=out)
        return
    if not db.exists():
        raise AdminError(f"--database {db}: no such file (run: cocalcproxy-admin --database {db} init)")
    a = Admin(db, out)
    cmd = args.command
    if cmd == "add-host":
        a.add_host(args.host_id, args.url)
    elif cmd == "remove-host":
        a.remove_host(args.host_id)
    elif cmd == "add-project":
        a.add_project(args.project_id, args.owner)
    elif cmd in ("place", "stop"):
        a.place(args.project_id, args.host_id if cmd == "place" else None)
    elif cmd == "add-account":
        a.add_account(args.account_id, args.admin)
    elif cmd in ("admin", "unadmin"):
        a.set_admin(args.account_id, cmd == "admin")
    elif cmd in ("ban", "unban"):
        a.set_banned(args.account_id, cmd == "ban")
    elif cmd in ("add-collaborator", "remove-collaborator"):
        a.set_member(args.project_id, args.account_id, args.group if cmd == "add-collaborator" else None)
    elif cmd == "new-session":
        a.new_secret("remember_me", args.account_id, args.days)
        name = CookieNames.for_base(args.base_url, args.cookie_name).session.decode()
        print(f"(the cookie's name: {name})", file=sys.stderr)
    elif cmd == "new-api-key":
        a.new_secret("api_keys", args.account_id, args.days, args.project)
    elif cmd in ("revoke-session", "revoke-api-key"):
        a.revoke(args.table, args.secret, args.hash, args.account)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run(args)
    except (AdminError, DatabaseURLError) as e:
        print(f"cocalcproxy-admin: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a database error: one line, no traceback
        print(f"cocalcproxy-admin: {args.command} failed: {type(e).__name__}: {str(e).strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
