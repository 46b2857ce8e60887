"""The host role's registry snapshot: real SQLite files, a fake clock driving the polls."""

from __future__ import annotations

import os
import sqlite3

import pytest
from twisted.internet.task import Clock

from cocalcproxy.registry.host_sqlite import HostRegistry, RegistryError
from cocalcproxy.routing.host import Placement

PID = "6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f"
PID2 = "aaaaaaaa-1b4a-4c8e-9d7f-0a1b2c3d4e5f"


def make_db(path, rows=((PID, "running", 8081),), extra_column: bool = True):
    conn = sqlite3.connect(path)
    cols = "project_id TEXT PRIMARY KEY, state TEXT, http_port INTEGER" + (", image TEXT" if extra_column else "")
    conn.execute(f"CREATE TABLE projects ({cols})")
    for row in rows:
        conn.execute("INSERT INTO projects (project_id, state, http_port) VALUES (?, ?, ?)", row)
    conn.commit()
    return conn


def test_snapshot_and_changes_seen_within_a_second(tmp_path):
    path = str(tmp_path / "reg.sqlite3")
    writer = make_db(path)
    clock = Clock()
    reg = HostRegistry(path, clock)
    reg.start()
    assert reg.snapshot == {PID: Placement("running", 8081)}
    loads = reg.loads
    clock.advance(0.5)
    clock.advance(0.5)
    assert reg.loads == loads  # nothing changed: the table is not read again
    writer.execute("INSERT INTO projects (project_id, state, http_port) VALUES (?, ?, ?)", (PID2.upper(), "stopped", None))
    writer.execute("UPDATE projects SET http_port = 9000 WHERE project_id = ?", (PID,))
    writer.commit()
    clock.advance(0.5)
    assert reg.snapshot == {PID: Placement("running", 9000), PID2: Placement("stopped", None)}
    reg.stop()


def test_bad_ports_and_rows_are_harmless(tmp_path):
    path = str(tmp_path / "reg.sqlite3")
    make_db(path, [(PID, "running", 70000), (PID2, None, "eighty"), ("x", "running", 1)])
    reg = HostRegistry(path, Clock())
    assert reg.snapshot[PID] == Placement("running", None)
    assert reg.snapshot[PID2] == Placement("", None)
    reg.stop()


def test_a_replaced_file_is_reopened(tmp_path):
    path = str(tmp_path / "reg.sqlite3")
    make_db(path).close()
    clock = Clock()
    reg = HostRegistry(path, clock)
    reg.start()
    new = str(tmp_path / "new.sqlite3")
    make_db(new, [(PID2, "running", 8082)]).close()
    os.replace(new, path)  # what a manager writing a fresh file and renaming it does
    clock.advance(0.5)
    assert reg.snapshot == {PID2: Placement("running", 8082)}
    reg.stop()


def test_an_unreadable_file_keeps_the_last_snapshot(tmp_path):
    path = str(tmp_path / "reg.sqlite3")
    make_db(path).close()
    clock = Clock()
    reg = HostRegistry(path, clock)
    reg.start()
    os.rename(path, path + ".away")
    clock.advance(0.5)
    assert reg.snapshot == {PID: Placement("running", 8081)} and reg.problem
    with open(path, "wb") as f:
        f.write(b"not a database at all" * 100)
    clock.advance(0.5)
    assert reg.snapshot == {PID: Placement("running", 8081)}
    os.replace(path + ".away", path)
    clock.advance(0.5)
    assert reg.problem is None and reg.snapshot == {PID: Placement("running", 8081)}
    reg.stop()


def test_a_writer_holding_the_lock_does_not_block_the_poll(tmp_path):
    path = str(tmp_path / "reg.sqlite3")
    make_db(path).close()
    clock = Clock()
    reg = HostRegistry(path, clock)
    reg.start()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("UPDATE projects SET state = 'stopped'")
    clock.advance(0.5)  # returns at once (timeout 0), the old snapshot stays, no warning
    assert reg.snapshot[PID].state == "running" and reg.problem is None
    writer.execute("COMMIT")
    clock.advance(0.5)
    assert reg.snapshot[PID].state == "stopped"
    reg.stop()


@pytest.mark.parametrize("content", [None, b"garbage" * 10, "no table"])
def test_startup_errors_name_the_file(tmp_path, content):
    path = str(tmp_path / "reg.sqlite3")
    if content == "no table":
        sqlite3.connect(path).close()
    elif content is not None:
        with open(path, "wb") as f:
            f.write(content)
    with pytest.raises(RegistryError, match="--registry " + path):
        HostRegistry(path, Clock())
