"""Fork safety for the worker's native calls (SQLite, database drivers).

A library such as SQLite takes process-wide mutexes inside each call (its memory allocator, its
list of open files). If one thread is inside such a call when another thread forks, the child
starts with that mutex locked and no thread to unlock it: its first call into the library (a
forked worker opening its own spool) blocks forever. So the worker's threads make every such call
inside ``native``, and ``fork()`` waits for it: it takes the lock before forking and releases it
after, in the parent; the child starts with a fresh one. A fork waits at most for one call (a
spool write, one batch into the database).

Only the worker's own threads are covered; a host thread using SQLite while the host forks is the
hazard SQLite's documentation describes, whatever Event Trail does.
"""
from __future__ import annotations

import os
import threading
from types import TracebackType

_lock = threading.RLock()


class _Native:
    """``with native:`` around a call into a library that is not fork-safe mid-call."""

    def __enter__(self) -> None:
        _lock.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _lock.release()


native = _Native()


def _before_fork() -> None:
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
