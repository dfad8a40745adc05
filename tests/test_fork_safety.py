"""Forking while the worker's threads are inside SQLite: the child's first SQLite call (opening
its own spool) must never block on a mutex the parent's thread held at fork time.

Root cause of the hang of ``test_forked_workers_deliver_each_event_once``: a worker's builder
opens its spool (``sqlite3.connect``, the WAL pragma, the schema) on its first event, and that
ran outside the spool's mutex, which was all ``fork()`` waited for. A test that puts events and
forks at once forks while that runs; in about 1 fork in 25 the child then hung. The database sink
inserted outside it too. Now every SQLite call of the worker's threads runs inside
``forksafe.native``, which ``fork()`` waits for.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from eventtrail.build import prepare
from eventtrail.delivery.sinks import DatabaseSink
from eventtrail.delivery.spool import SqliteSpool
from eventtrail.models import StoredEvent

from tests.support.sqlite_alias import sqlite_events
from tests.test_delivery import FORKED_PATHS, drafts, parent_and_two_forked_children_deliver

FORKS = 200
CHILD_SECONDS = 20  # a child that has not opened its spool by then is stuck for good


def fork_while(busy, tmp_path: Path) -> list[int]:
    """Run ``busy`` in a thread, fork FORKS times; each child opens and closes a spool of its
    own. Returns the pids of the children killed by their alarm: those that hung."""
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            busy()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    hung = []
    try:
        for _ in range(FORKS):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    signal.alarm(CHILD_SECONDS)
                    SqliteSpool(tmp_path / "children", 100, 3600).close()
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if os.WIFSIGNALED(status) or os.WEXITSTATUS(status):
                hung.append(pid)
    finally:
        stop.set()
        thread.join(10)
    return hung


def test_a_fork_while_a_thread_opens_its_spool_never_hangs_the_child(tmp_path):
    def open_and_close():
        SqliteSpool(tmp_path / "parent", 100, 3600).close()

    assert fork_while(open_and_close, tmp_path) == []


def test_a_fork_while_the_spool_writes_never_hangs_the_child(tmp_path):
    spool = SqliteSpool(tmp_path / "parent", 10_000, 3600)
    docs = [(f"id-{i}", '{"x": 1}') for i in range(20)]

    def write():
        spool.append(docs)
        spool.ack(spool.peek(20)[-1][0])

    try:
        assert fork_while(write, tmp_path) == []
    finally:
        spool.close()


def test_a_fork_while_the_database_sink_inserts_never_hangs_the_child(tmp_path, django_db_blocker):
    with django_db_blocker.unblock(), sqlite_events("fork_events",
                                                    tmp_path / "events.sqlite3") as alias:
        sink = DatabaseSink(alias)
        docs = [prepare(d)[1] for d in drafts(50)]

        def insert():
            sink.send(docs)

        assert fork_while(insert, tmp_path) == []


@pytest.mark.real_delivery
def test_forked_workers_deliver_each_event_once_through_the_database_sink(tmp_path,
                                                                         django_db_blocker):
    """The fork test's scenario with the embedded store: a parent and two children, each
    delivering its own events into one SQLite file, each event once."""
    with django_db_blocker.unblock(), sqlite_events("fork_events",
                                                    tmp_path / "events.sqlite3") as alias:
        codes = parent_and_two_forked_children_deliver({
            "SINK": "database", "DATABASE_ALIAS": alias, "SPOOL_DIR": str(tmp_path / "spool")})
        assert codes == [0, 0]
        paths = sorted(int(p.rsplit("/", 1)[1]) for p in StoredEvent.objects.using(alias)
                       .values_list("url_path", flat=True))
        assert paths == FORKED_PATHS
