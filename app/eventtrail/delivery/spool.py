"""Spools: where built events wait until a sink acknowledges them. On disk by default."""
from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import IO, Any, Protocol

from eventtrail.delivery.forksafe import native
from eventtrail.stats import counters

logger = logging.getLogger("eventtrail.delivery")

Row = tuple[int, str]  # (sequence number, serialised document)


class Spool(Protocol):
    def append(self, docs: list[tuple[str, str]]) -> int: ...
    def peek(self, limit: int) -> list[Row]: ...
    def ack(self, upto: int) -> None: ...
    def count(self) -> int: ...
    def expire(self) -> None: ...
    def adopt_orphans(self) -> int: ...
    def close(self) -> None: ...


def _locked(method: Any) -> Any:
    """The builder thread appends while the sender peeks and acknowledges: one at a time."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return method(self, *args, **kwargs)

    return wrapper


class MemorySpool:
    """A bounded in-memory spool, for tests and for SPOOL off. Lost if the process dies."""

    def __init__(self, max_events: int) -> None:
        self._mutex = threading.RLock()
        self.max_events = max_events
        self.rows: deque[tuple[int, str, float]] = deque()
        self.seq = 0

    @_locked
    def append(self, docs: list[tuple[str, str]]) -> int:
        now = time.time()
        for _, doc in docs:
            self.seq += 1
            self.rows.append((self.seq, doc, now))
        excess = len(self.rows) - self.max_events
        if excess > 0:
            for _ in range(excess):
                self.rows.popleft()
            counters.drop("spool_full", excess)
        return len(docs)

    @_locked
    def peek(self, limit: int) -> list[Row]:
        return [(seq, doc) for seq, doc, _ in list(self.rows)[:limit]]

    @_locked
    def ack(self, upto: int) -> None:
        while self.rows and self.rows[0][0] <= upto:
            self.rows.popleft()

    @_locked
    def count(self) -> int:
        return len(self.rows)

    @_locked
    def expire(self) -> None:
        return None

    @_locked
    def adopt_orphans(self) -> int:
        return 0

    @_locked
    def close(self) -> None:
        return None


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    at REAL NOT NULL,
    doc TEXT NOT NULL
)
"""


class SqliteSpool:
    """One SQLite file per process, held with flock so live workers can adopt dead ones' files.

    A row is deleted only once its batch is acknowledged, so a crash mid-send re-sends it;
    ``event.id`` makes that harmless downstream.
    """

    def __init__(self, directory: str | Path, max_events: int, max_age: float) -> None:
        # Every SQLite call, opening included, runs inside ``forksafe.native``: one at a time
        # (the builder appends while the sender peeks and acknowledges), and never while the
        # process forks.
        self._mutex = native
        with native:
            self._setup(directory, max_events, max_age)

    def _setup(self, directory: str | Path, max_events: int, max_age: float) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self.max_age = max_age
        name = f"spool-{os.getpid()}-{secrets.token_hex(4)}"
        # Lock first, then create the database, so no adopter ever sees an unlocked live file:
        # the lock file is made and locked under a name adopters do not look at, then renamed.
        # (Made under its own name, another worker scanning the directory could lock it before
        # we do, take us for dead and unlink it.)
        self.lock_path = self.dir / f"{name}.lock"
        making = self.dir / f".{name}.lock.new"
        self._lock: IO[bytes] | None = open(making, "wb")  # noqa: SIM115
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(making, self.lock_path)
        self.path = self.dir / f"{name}.sqlite"
        self.db = self._open(self.path)
        self._count = 0
        # Space set aside while the disk has some: forgetting delivered rows (a DELETE) must
        # write to the WAL, and when the spool itself has filled the disk nothing else would
        # free it. Given up to the first ack that fails, made again once there is room.
        self.reserve_path = self.dir / f"{name}.reserve"
        self._make_reserve()
        _live.add(self)

    RESERVE = 512 * 1024

    def _make_reserve(self) -> None:
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.RESERVE)
            finally:
                os.close(fd)
        except OSError:
            self.reserve_path.unlink(missing_ok=True)  # no room now; tried again later

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        # Keep the WAL small (checkpoint every 1 MB, cut back to 1 MB): on a full disk the space
        # the WAL holds is what the next transaction needs.
        db.execute("PRAGMA wal_autocheckpoint=256")
        db.execute("PRAGMA journal_size_limit=1048576")
        # NORMAL survives a process crash; only an OS crash can lose the last transactions.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(SCHEMA)
        return db

    @_locked
    def append(self, docs: list[tuple[str, str]]) -> int:
        """Write ``docs`` in one transaction: all of them, or (raising) none. Returns how many
        were new; an event.id already waiting is not stored twice."""
        now = time.time()
        before = self.db.total_changes
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT OR IGNORE INTO events (id, at, doc) VALUES (?, ?, ?)",
                [(event_id, now, doc) for event_id, doc in docs],
            )
            self.db.execute("COMMIT")
        except BaseException:
            # A full disk fails the COMMIT: the transaction must not stay open for the next one.
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            self._reclaim()  # so that the next try finds the WAL's space free
            raise
        added = self.db.total_changes - before
        self._count += added
        if self._count > self.max_events:
            self._trim(self._count - self.max_events, "spool_full")
        return added

    def _trim(self, excess: int, reason: str) -> None:
        cur = self.db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
            (excess,),
        )
        self._count -= cur.rowcount
        counters.drop(reason, cur.rowcount)
        logger.warning("Event Trail spool over its bound: dropped %d oldest (%s)", cur.rowcount, reason)

    @_locked
    def peek(self, limit: int) -> list[Row]:
        return self.db.execute(
            "SELECT seq, doc FROM events ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()

    @_locked
    def ack(self, upto: int) -> None:
        try:
            cur = self.db.execute("DELETE FROM events WHERE seq <= ?", (upto,))
        except sqlite3.OperationalError:
            if not self.reserve_path.exists():
                raise
            # The disk is full: give the reserve up so the delivered rows can go, which frees
            # pages for what comes next.
            self.reserve_path.unlink()
            logger.warning("Event Trail spool: the disk is full; using the space set aside to "
                           "forget delivered events")
            cur = self.db.execute("DELETE FROM events WHERE seq <= ?", (upto,))
            self._reclaim()
        self._count -= cur.rowcount
        if self._count == 0 and not self.reserve_path.exists() and self._room(4 * self.RESERVE):
            # Set aside again at a low point, and only with room to spare: taken back too soon,
            # it would fill the disk again before what waits in memory gets in.
            self._make_reserve()

    def _room(self, size: int) -> bool:
        try:
            stat = os.statvfs(self.dir)
        except OSError:
            return False
        return stat.f_bavail * stat.f_frsize >= size

    def _reclaim(self) -> None:
        """Copy the WAL into the database and empty it: on a full disk, the space the WAL holds
        is what the next transaction needs (deleted rows leave free pages in the database)."""
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @_locked
    def count(self) -> int:
        return self._count

    @_locked
    def expire(self) -> None:
        cur = self.db.execute("DELETE FROM events WHERE at < ?", (time.time() - self.max_age,))
        if cur.rowcount:
            self._count -= cur.rowcount
            counters.drop("spool_expired", cur.rowcount)
            logger.warning("Event Trail spool: %d events older than SPOOL_MAX_AGE dropped", cur.rowcount)

    @_locked
    def adopt_orphans(self) -> int:
        """Move the rows of spools whose owner died into this one. Returns how many."""
        adopted = 0
        for lock_path in sorted(self.dir.glob("spool-*.lock")):
            if lock_path == self.lock_path:
                continue
            try:
                handle = open(lock_path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()  # its owner is alive
                continue
            try:
                adopted += self._absorb(lock_path.with_suffix(".sqlite"))
                lock_path.with_suffix(".reserve").unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)
            finally:
                handle.close()
        if adopted:
            # Counted here so this process's sum balances: enqueued + adopted == delivered +
            # in_spool + in_memory + dropped (the dead owner counted them as enqueued).
            counters.incr("adopted", adopted)
            logger.info("Event Trail adopted %d spooled events from dead workers", adopted)
        return adopted

    def _absorb(self, orphan: Path) -> int:
        if not orphan.exists():
            return 0
        before = self.db.total_changes
        self.db.execute("ATTACH DATABASE ? AS orphan", (str(orphan),))
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT OR IGNORE INTO main.events (id, at, doc) "
                "SELECT id, at, doc FROM orphan.events ORDER BY seq"
            )
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # a full disk: the orphan stays whole for a later try
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            raise
        finally:
            self.db.execute("DETACH DATABASE orphan")
        moved = self.db.total_changes - before
        self._count += moved
        for suffix in ("", "-wal", "-shm"):
            Path(f"{orphan}{suffix}").unlink(missing_ok=True)
        return moved

    @_locked
    def close(self) -> None:
        left = self.count()
        self.db.close()
        self.reserve_path.unlink(missing_ok=True)
        if left == 0:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        if self._lock is not None:
            if left == 0:
                self.lock_path.unlink(missing_ok=True)
            # Releasing the lock with rows left hands them to the next live worker.
            self._lock.close()
            self._lock = None


# --- fork safety ------------------------------------------------------------------------------------
# SQLite calls run inside forksafe.native, which fork() waits for. The child never uses its
# parent's spools (it makes its own): it drops its copy of each lock file's descriptor, which
# leaves the parent's lock in place (flock is per open file).
_live: weakref.WeakSet[SqliteSpool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for spool in list(_live):
        if spool._lock is not None:
            spool._lock.close()
            spool._lock = None
    _live.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def spooled_on_disk(directory: str | Path) -> int:
    """Events waiting in every spool file of ``directory`` (for operators)."""
    total = 0
    for path in Path(directory).glob("spool-*.sqlite"):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
            try:
                total += db.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error:
            continue
    return total
