"""The spools: bounds, expiry, acknowledgement and adoption, each counted."""
import fcntl
import json
import time

import pytest
from eventtrail.delivery.spool import MemorySpool, SqliteSpool, spooled_on_disk
from eventtrail.stats import counters


def rows(n, start=0):
    return [(f"id-{i}", json.dumps({"n": i})) for i in range(start, start + n)]


@pytest.fixture(autouse=True)
def fresh_counters():
    counters.reset()


@pytest.mark.parametrize("make", [lambda d: SqliteSpool(d, 100, 3600), lambda d: MemorySpool(100)],
                         ids=["sqlite", "memory"])
def test_over_the_bound_the_oldest_are_dropped_and_counted(tmp_path, make):
    spool = make(tmp_path)
    spool.append(rows(80))
    spool.append(rows(50, start=80))
    assert spool.count() == 100
    assert json.loads(spool.peek(1)[0][1]) == {"n": 30}
    assert counters.snapshot()["counters"]["dropped.spool_full"] == 30
    spool.close()


def test_rows_leave_only_when_acknowledged_and_duplicates_are_ignored(tmp_path):
    spool = SqliteSpool(tmp_path, 1000, 3600)
    spool.append(rows(10))
    spool.append(rows(10))  # the same event ids again
    assert spool.count() == 10
    batch = spool.peek(4)
    spool.ack(batch[-1][0])
    assert spool.count() == 6
    assert [json.loads(d)["n"] for _, d in spool.peek(100)] == list(range(4, 10))
    spool.close()


def test_old_events_expire_and_are_counted(tmp_path):
    spool = SqliteSpool(tmp_path, 1000, max_age=0.05)
    spool.append(rows(5))
    time.sleep(0.1)
    spool.append(rows(2, start=5))
    spool.expire()
    assert spool.count() == 2
    assert counters.snapshot()["counters"]["dropped.spool_expired"] == 5
    spool.close()


def test_a_live_spool_is_never_adopted_a_dead_one_is(tmp_path):
    alive = SqliteSpool(tmp_path, 1000, 3600)
    alive.append(rows(3))
    adopter = SqliteSpool(tmp_path, 1000, 3600)
    assert adopter.adopt_orphans() == 0
    # Its owner goes away without draining: the lock is released, the rows stay.
    alive.db.close()
    alive._lock.close()
    alive._lock = None
    assert spooled_on_disk(tmp_path) == 3
    assert adopter.adopt_orphans() == 3
    assert adopter.count() == 3
    assert not alive.path.exists() and not alive.lock_path.exists()
    adopter.close()
    assert adopter.path.exists()  # rows left: kept for the next process


def test_an_empty_spool_removes_its_files_on_close(tmp_path):
    spool = SqliteSpool(tmp_path, 1000, 3600)
    spool.append(rows(2))
    spool.ack(spool.peek(10)[-1][0])
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_the_lock_is_held_while_the_spool_lives(tmp_path):
    spool = SqliteSpool(tmp_path, 10, 3600)
    with open(spool.lock_path, "rb") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    spool.close()
