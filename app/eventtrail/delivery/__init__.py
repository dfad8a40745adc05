"""Delivery: a bounded hand-off, one worker thread per process, a spool, retries and counters."""
from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from eventtrail import schema
from eventtrail.capture import build
from eventtrail.conf import get_config
from eventtrail.delivery.sinks import DeliveryError, Sink, make_sink
from eventtrail.delivery.spool import MemorySpool, Spool, SqliteSpool
from eventtrail.processors import run
from eventtrail.stats import counters

# The worker's own log lines go to "eventtrail.delivery"; no event type listens to logging,
# so they can never feed back into the event stream.
logger = logging.getLogger("eventtrail.delivery")

ADOPT_EVERY = 30.0
PERSIST_EVERY = 1.0


# One encoder for every event: json.dumps with options builds a new one per call.
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def serialise(event: dict[str, Any]) -> str:
    return _encoder.encode(schema.unflatten(event, public=True))


def prepare(draft: dict[str, Any]) -> tuple[str, str] | None:
    """Build, process and serialise one draft: (event.id, JSON), or None if dropped."""
    event = run(build(draft))
    if event is None:
        return None
    return event["event.id"], serialise(event)


class Handoff:
    """What request threads see: ``put`` appends to a bounded deque and returns at once."""

    def __init__(self, sink: Sink | None = None, spool: Spool | None = None) -> None:
        config = get_config()
        self.pid = os.getpid()
        self.queue: deque[dict[str, Any]] = deque()
        self.maxsize: int = config["QUEUE_SIZE"]
        self.batch_size: int = config["BATCH_SIZE"]
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._sink = sink
        self._spool = spool
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.sender: threading.Thread | None = None
        self.send_wake = threading.Event()
        self.sending_stops = threading.Event()
        self.building = False
        self.idle = threading.Event()

    # --- request thread ---------------------------------------------------------------------
    def put(self, draft: dict[str, Any]) -> None:
        if len(self.queue) >= self.maxsize:
            counters.drop("queue_full")
            return
        self.queue.append(draft)
        if self.thread is None:
            self.start()
        if len(self.queue) >= self.batch_size:
            self.wake.set()

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self.thread is not None:
                return
            self.thread = threading.Thread(target=self._run, name="eventtrail-delivery", daemon=True)
            self.thread.start()

    def _open(self) -> tuple[Sink, Spool]:
        config = get_config()
        if self._spool is None:
            self._spool = (
                SqliteSpool(config["SPOOL_DIR"], config["SPOOL_MAX_EVENTS"], config["SPOOL_MAX_AGE"])
                if config["SPOOL"]
                else MemorySpool(config["SPOOL_MAX_EVENTS"])
            )
        if self._sink is None:
            self._sink = make_sink()
        return self._sink, self._spool

    def _run(self) -> None:
        """The builder: queued drafts into the spool. It starts the sender, which sends from the
        spool meanwhile, so building the next batch never waits for the last one's answer."""
        config = get_config()
        sink, spool = self._open()
        self.sender = threading.Thread(
            target=self._send_loop, args=(sink, spool), name="eventtrail-sender", daemon=True
        )
        self.sender.start()
        adopt_at = persist_at = 0.0
        while True:
            self.wake.wait(config["FLUSH_INTERVAL"])
            self.wake.clear()
            stopping = self.stopping.is_set()
            try:
                if time.monotonic() >= adopt_at:
                    adopt_at = time.monotonic() + ADOPT_EVERY
                    if spool.adopt_orphans():
                        self.send_wake.set()
                    spool.expire()
                if self._spool_queued(spool):
                    self.send_wake.set()
                if time.monotonic() >= persist_at:
                    persist_at = time.monotonic() + PERSIST_EVERY
                    self.persist()
            except Exception as exc:  # the worker must outlive any bug or outage
                self._worker_error(exc)
            if stopping:
                self.sending_stops.set()
                self.send_wake.set()
                return

    def _send_loop(self, sink: Sink, spool: Spool) -> None:
        config = get_config()
        backoff = list(config["RETRY_BACKOFF"]) or [1.0]
        state = {"attempt": 0, "retry_at": 0.0}
        while True:
            self.send_wake.wait(config["FLUSH_INTERVAL"])
            self.send_wake.clear()
            last = self.sending_stops.is_set()  # set only once everything queued is spooled
            try:
                self._deliver(sink, spool, backoff, state)
                if not self.queue and not self.building and spool.count() == 0:
                    self.idle.set()
                else:
                    self.idle.clear()
            except Exception as exc:
                self._worker_error(exc)
            if last:
                return

    def _worker_error(self, exc: Exception) -> None:
        counters.incr("internal_error")
        counters.error(f"worker: {exc!r}")
        logger.exception("Event Trail delivery worker error; continuing")
        time.sleep(0.1)

    def _spool_queued(self, spool: Spool) -> int:
        """Move everything queued into the spool, in batches: one commit per batch."""
        spooled = 0
        self.building = True
        try:
            while self.queue:
                drafts: list[dict[str, Any]] = []
                while self.queue and len(drafts) < self.batch_size * 4:
                    drafts.append(self.queue.popleft())
                docs = []
                for draft in drafts:
                    try:
                        prepared = prepare(draft)
                    except Exception as exc:
                        counters.drop("invalid")
                        counters.error(f"build: {exc!r}")
                        logger.exception("Event Trail could not build an event; dropped")
                        continue
                    if prepared is not None:
                        docs.append(prepared)
                counters.incr("enqueued", len(drafts))
                if docs:
                    spool.append(docs)
                    counters.incr("spooled", len(docs))
                    spooled += len(docs)
                    self.send_wake.set()
        finally:
            self.building = False
        return spooled

    def _deliver(self, sink: Sink, spool: Spool, backoff: list[float], state: dict[str, Any]) -> None:
        if time.monotonic() < state["retry_at"]:
            return
        while True:
            rows = spool.peek(self.batch_size)
            if not rows:
                return
            try:
                sink.send([doc for _, doc in rows])
            except Exception as exc:
                delivered = exc.delivered if isinstance(exc, DeliveryError) else 0
                if delivered:
                    spool.ack(rows[delivered - 1][0])
                    counters.incr("delivered", delivered)
                delay = backoff[min(state["attempt"], len(backoff) - 1)]
                state["attempt"] += 1
                state["retry_at"] = time.monotonic() + delay
                counters.incr("retried", len(rows) - delivered)
                counters.error(f"{sink.name}: {exc}")
                logger.warning("Event Trail %s: %s; retry in %.1fs", sink.name, exc, delay)
                return
            spool.ack(rows[-1][0])
            counters.incr("delivered", len(rows))
            state["attempt"] = 0

    def persist(self) -> None:
        try:
            counters.persist(get_config()["SPOOL_DIR"])
        except OSError as exc:
            logger.warning("Event Trail could not write its counters: %s", exc)

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued is delivered; False when ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        self.idle.clear()
        while time.monotonic() < deadline:
            self.wake.set()
            self.send_wake.set()
            if self.idle.wait(0.05) and not self.queue:
                return True
        return False

    def stop(self, timeout: float | None = None) -> int:
        """Stop the worker: spool what is queued, try one last send, keep the rest on disk.

        Returns how many events are left in the spool.
        """
        timeout = get_config()["SHUTDOWN_TIMEOUT"] if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for thread in (self.thread, self.sender):
            if thread is not None and thread.is_alive():
                self.stopping.set()
                self.wake.set()
                thread.join(max(0.0, deadline - time.monotonic()))
        left = self._spool.count() if self._spool is not None else len(self.queue)
        stuck = [t.name for t in (self.thread, self.sender) if t is not None and t.is_alive()]
        if stuck:
            # A send is hung (a blackholed receiver): what is spooled stays on disk for the
            # next process; the daemon threads die with this one.
            logger.warning("Event Trail delivery did not stop within %.1fs (%s); %d events "
                           "stay in the spool", timeout, ", ".join(stuck), left)
            counters.drop("shutdown", len(self.queue))
            return left + len(self.queue)
        if self._spool is not None:
            if left and isinstance(self._spool, MemorySpool):
                counters.drop("shutdown", left)
            if left:
                logger.warning("Event Trail stopping with %d events left in the spool", left)
            self._spool.close()
        if self._sink is not None:
            self._sink.close()
        self.persist()
        return left


_handoff: Handoff | None = None
_handoff_lock = threading.Lock()
_override: Callable[[dict[str, Any]], None] | None = None


class _Direct:
    """Used by ``eventtrail.testing.capture_events``: build synchronously and collect."""

    def __init__(self, collect: Callable[[dict[str, Any]], None]) -> None:
        self.put = collect


def handoff() -> Handoff | _Direct:
    """This process's hand-off. A forked child gets its own, never the parent's."""
    global _handoff
    if _override is not None:
        return _Direct(_override)
    current = _handoff
    if current is not None and current.pid == os.getpid():
        return current
    with _handoff_lock:
        if _handoff is None or _handoff.pid != os.getpid():
            if _handoff is not None:
                _forget_parent(_handoff)
            _handoff = Handoff()
        return _handoff


def _forget_parent(parent: Handoff) -> None:
    """In a forked child: drop the parent's queue (the parent delivers it) and its lock fd."""
    parent.queue.clear()
    spool = parent._spool
    if isinstance(spool, SqliteSpool) and spool._lock is not None:
        spool._lock.close()
        spool._lock = None


_held_for_fork: list[Any] = []


def _before_fork() -> None:
    # SQLite's own mutexes are held while a thread is inside it; a fork at that moment leaves
    # them locked forever in the child, whose first sqlite3 call then hangs. Every SQLite call
    # of our worker threads goes through the spool's mutex, so holding it keeps them out.
    current = _handoff
    spool = current._spool if current is not None and current.pid == os.getpid() else None
    mutex = getattr(spool, "_mutex", None)
    if mutex is not None:
        mutex.acquire()
        _held_for_fork.append(mutex)


def _after_fork_in_parent() -> None:
    while _held_for_fork:
        _held_for_fork.pop().release()


def _after_fork_in_child() -> None:
    # Locks another thread held at fork time would never be released in the child.
    global _handoff_lock
    _handoff_lock = threading.Lock()
    _held_for_fork.clear()  # the parent's spool is never used here


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


def shutdown(timeout: float | None = None) -> int:
    global _handoff
    with _handoff_lock:
        current, _handoff = _handoff, None
    if current is None or current.pid != os.getpid():
        return 0
    return current.stop(timeout)


atexit.register(shutdown)
