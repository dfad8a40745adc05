"""Delivery: a bounded hand-off, one worker per process, a spool, retries and counters.

``handoff()`` is this process's worker (``worker.Handoff``); ``redirected()`` sends drafts
somewhere else for a while (``eventtrail.testing.capture_events``); ``shutdown()`` runs at exit.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from eventtrail.delivery.worker import Handoff, make_sink

__all__ = ["Handoff", "handoff", "make_sink", "redirected", "shutdown", "start"]

logger = logging.getLogger("eventtrail.delivery")
_handoff: Handoff | None = None
_handoff_lock = threading.Lock()
_redirect: Callable[[Any], None] | None = None


class _Direct:
    """Stands in for the worker while ``redirected``: every draft goes to one callable."""

    def __init__(self, put: Callable[[Any], None]) -> None:
        self.put = put


@contextmanager
def redirected(put: Callable[[Any], None]) -> Iterator[None]:
    """Within the block, drafts go to ``put`` instead of the worker (nestable)."""
    global _redirect
    previous, _redirect = _redirect, put
    try:
        yield
    finally:
        _redirect = previous


def handoff() -> Handoff | _Direct:
    """This process's hand-off. A forked child gets its own, never the parent's."""
    global _handoff
    if _redirect is not None:
        return _Direct(_redirect)
    current = _handoff
    if current is not None and current.pid == os.getpid():
        return current
    with _handoff_lock:
        if _handoff is None or _handoff.pid != os.getpid():
            if _handoff is not None:
                _handoff.queue.clear()  # a forked child: the parent delivers what it queued
            _handoff = Handoff()
        return _handoff


def start() -> Handoff | None:
    """Start this process's worker now rather than at its first event: a process about to serve
    requests (the middleware calls this when the app loads) takes over the spools of workers that
    died, at once. None while ``redirected``."""
    current = handoff()
    if not isinstance(current, Handoff):
        return None
    current.start()
    return current


def _after_fork_in_child() -> None:
    # A lock another thread held at fork time would never be released in the child.
    global _handoff_lock
    _handoff_lock = threading.Lock()
    # A preforking server (gunicorn --preload) forks workers from a process whose worker runs:
    # each child starts its own at once, as it would have had it loaded the app itself. A fork of
    # a process whose worker never started (a task runner's pool) starts nothing.
    parent = _handoff
    if parent is not None and parent.thread is not None and _redirect is None:
        try:
            start()
        except Exception:  # a fork must never fail because of us
            logger.exception("Event Trail could not start the delivery worker after fork")


os.register_at_fork(after_in_child=_after_fork_in_child)


def shutdown(timeout: float | None = None) -> int:
    global _handoff
    with _handoff_lock:
        current, _handoff = _handoff, None
    if current is None or current.pid != os.getpid():
        return 0
    return current.stop(timeout)


atexit.register(shutdown)
