"""The hand-off: a bounded queue request threads append to, and the two threads that drain it.

The builder thread turns queued drafts into documents (``prepare``) and spools them; the sender
thread (``Sender``) sends from the spool meanwhile, so building the next batch never waits for
the last one's answer. Neither thread lets an exception end it: each is logged, counted and
retried with backoff, and what waits stays queued or spooled.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from eventtrail.build import prepare as build_and_serialise
from eventtrail.conf import get_config, load, resolved
from eventtrail.delivery.sender import Backoff, ErrorLog, Sender
from eventtrail.delivery.sinks import Sink
from eventtrail.delivery.spool import MemorySpool, Spool, SqliteSpool
from eventtrail.stats import counters

logger = logging.getLogger("eventtrail.delivery")

ADOPT_EVERY = 30.0
PERSIST_EVERY = 1.0

# (event.id, JSON) for a draft, or None when a processor dropped it on purpose.
Prepare = Callable[[Any], "tuple[str, str] | None"]


def make_sink(value: str | None = None) -> Sink:
    """The configured SINK (or the one ``value`` names), built with SINK_OPTIONS."""
    factory = resolved("SINK") if value is None else load("SINK", value)
    sink: Sink = factory(**get_config()["SINK_OPTIONS"])
    return sink


def make_spool() -> Spool:
    config = get_config()
    if config["SPOOL"]:
        return SqliteSpool(config["SPOOL_DIR"], config["SPOOL_MAX_EVENTS"], config["SPOOL_MAX_AGE"])
    return MemorySpool(config["SPOOL_MAX_EVENTS"])


class Handoff:
    """What request threads see: ``put`` appends to a bounded deque and returns at once."""

    def __init__(self, sink: Sink | None = None, spool: Spool | None = None,
                 prepare: Prepare = build_and_serialise,
                 open_sink: Callable[[], Sink] = make_sink,
                 open_spool: Callable[[], Spool] = make_spool) -> None:
        config = get_config()
        self.pid = os.getpid()
        self.queue: deque[Any] = deque()
        self.maxsize: int = config["QUEUE_SIZE"]
        self.batch_size: int = config["BATCH_SIZE"]
        self.flush_interval: float = config["FLUSH_INTERVAL"]
        self.prepare = prepare
        self.spool = spool
        self._sink = sink
        self._open_sink = open_sink
        self._open_spool = open_spool
        self._spool_backoff = Backoff(config["RETRY_BACKOFF"])
        # Documents built but not yet in the spool, because writing it failed (a full disk):
        # tried again with backoff, and bounded like the queue; the oldest go first.
        self.unspooled: deque[tuple[str, str]] = deque()
        self._write_backoff = Backoff(config["RETRY_BACKOFF"])
        self.errors = ErrorLog()
        self.sender: Sender | None = None
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.sender_thread: threading.Thread | None = None
        self.wake = threading.Event()  # the builder: drafts are waiting
        self.send_wake = threading.Event()  # the sender: documents are spooled
        self.stopping = threading.Event()
        self.idle = threading.Event()  # nothing queued, nothing spooled
        self.building = False

    # --- request thread -------------------------------------------------------------------------
    def put(self, draft: Any) -> None:
        # No counter on the request thread: an event counts as enqueued once the worker takes
        # it from the queue. One refused here counts as enqueued and dropped at once.
        if len(self.queue) >= self.maxsize:
            counters.incr("enqueued")
            counters.drop("queue_full")
            return
        self.queue.append(draft)
        if self.thread is None:
            self.start()
        if len(self.queue) >= self.batch_size:
            self.wake.set()

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self.thread is not None:
                return
            self.thread = threading.Thread(target=self._build_loop, name="eventtrail-delivery",
                                           daemon=True)
            self.thread.start()

    def in_memory(self) -> int:
        """Enqueued events held in this process only: built, and waiting for the spool."""
        return len(self.unspooled)

    def pending(self) -> int:
        """Events accepted and not yet delivered: queued, in memory or waiting in the spool."""
        spooled = self.spool.count() if self.spool is not None else 0
        return len(self.queue) + self.in_memory() + spooled

    def _ready(self) -> Sender | None:
        """The spool and the sender, opened on first use; None while the spool cannot open."""
        if self.sender is not None:
            return self.sender
        if not self._spool_backoff.ready():
            return None
        try:
            if self.spool is None:
                self.spool = self._open_spool()
        except Exception as exc:
            delay = self._spool_backoff.failed()
            self._worker_error(f"cannot open the spool: {exc!r}; retry in {delay:.1f}s", exc)
            return None
        config = get_config()
        self.sender = Sender(self.spool, self._open_sink, self.batch_size,
                             Backoff(config["RETRY_BACKOFF"]), sink=self._sink,
                             errors=self.errors)
        self.sender_thread = threading.Thread(target=self._send_loop, args=(self.sender,),
                                              name="eventtrail-sender", daemon=True)
        self.sender_thread.start()
        return self.sender

    def _build_loop(self) -> None:
        adopt_at = persist_at = 0.0
        while True:
            self.wake.wait(self.flush_interval)
            self.wake.clear()
            stopping = self.stopping.is_set()
            try:
                sender = self._ready()
                if sender is not None:
                    spool = sender.spool
                    if time.monotonic() >= adopt_at:
                        adopt_at = time.monotonic() + ADOPT_EVERY
                        if spool.adopt_orphans():
                            self.send_wake.set()
                        spool.expire()
                    if self._spool_queued(spool) or self.unspooled:
                        self.send_wake.set()
                if time.monotonic() >= persist_at:
                    persist_at = time.monotonic() + PERSIST_EVERY
                    self.persist()
            except Exception as exc:  # the worker must outlive any bug or outage
                self._worker_error(repr(exc), exc)
            if stopping:
                self.send_wake.set()
                return

    def _send_loop(self, sender: Sender) -> None:
        while True:
            self.send_wake.wait(self.flush_interval)
            self.send_wake.clear()
            # Set only once the builder has returned, so everything it could spool is spooled.
            last = self.stopping.is_set() and not (self.thread and self.thread.is_alive())
            try:
                sender.step()
                if (not self.queue and not self.unspooled and not self.building
                        and sender.spool.count() == 0):
                    self.idle.set()
                else:
                    self.idle.clear()
            except Exception as exc:
                self._worker_error(repr(exc), exc)
            if last:
                return

    def _worker_error(self, message: str, exc: BaseException) -> None:
        counters.incr("internal_error")
        counters.error(f"worker: {message}")
        self.errors.report(f"delivery worker error, continuing: {message}", exc)
        time.sleep(0.1)

    def _spool_queued(self, spool: Spool) -> int:
        """Build what is queued and move it into the spool, one commit per batch. What the spool
        cannot take waits in ``unspooled``, in order, and is written first next time."""
        spooled = self._write(spool)
        self.building = True
        try:
            while self.queue:
                drafts: list[Any] = []
                while self.queue and len(drafts) < self.batch_size * 4:
                    drafts.append(self.queue.popleft())
                counters.incr("enqueued", len(drafts))
                docs = self._build(drafts)
                if not self.unspooled and self._write_backoff.ready():
                    spooled += self._write(spool, docs)  # the usual case: straight in
                else:
                    self.unspooled.extend(docs)
                    spooled += self._write(spool)
                excess = len(self.unspooled) - self.maxsize
                if excess > 0:  # memory is bounded too: the oldest go
                    for _ in range(excess):
                        self.unspooled.popleft()
                    counters.drop("spool_unwritable", excess)
        finally:
            self.building = False
        return spooled

    def _build(self, drafts: list[Any]) -> list[tuple[str, str]]:
        docs = []
        for draft in drafts:
            try:
                prepared = self.prepare(draft)
            except Exception as exc:
                counters.drop("invalid")
                counters.error(f"build: {exc!r}")
                self.errors.report("could not build an event; dropped", exc)
                continue
            if prepared is None:
                counters.drop("processor")  # dropped on purpose (an opt-out)
            else:
                docs.append(prepared)
        return docs

    def _write(self, spool: Spool, fresh: list[tuple[str, str]] | None = None) -> int:
        """Write ``fresh`` documents, or what waits in ``unspooled``; on failure keep them in
        ``unspooled``, and back off."""
        if self.sender is not None and self.sender.unacked is not None:
            # The spool cannot forget a delivered batch (a full disk): let it drain first, or
            # new rows would take the space its DELETE needs.
            if fresh is not None:
                self.unspooled.extend(fresh)
            return 0
        if fresh is None and (not self.unspooled or not self._write_backoff.ready()):
            return 0
        if fresh is None:
            # A batch at a time: a small transaction fits where the disk has little room.
            docs = [self.unspooled[i] for i in range(min(self.batch_size, len(self.unspooled)))]
        else:
            docs = fresh
        if not docs:
            return 0
        try:
            added = spool.append(docs)
        except Exception as exc:
            if fresh is not None:
                self.unspooled.extend(fresh)
            delay = self._write_backoff.failed()
            counters.incr("spool_errors")
            counters.error(f"spool: {exc!r}")
            self.errors.report(f"could not write the spool ({exc!r}); {len(docs)} events wait in "
                               f"memory (at most QUEUE_SIZE), retry in {delay:.1f}s", exc)
            return 0
        if fresh is None:
            for _ in range(len(docs)):
                self.unspooled.popleft()
        self._write_backoff.succeeded()
        counters.incr("spooled", added)
        if added < len(docs):
            counters.drop("duplicate", len(docs) - added)
        if added:
            self.send_wake.set()
        if fresh is None and self.unspooled:
            added += self._write(spool)  # the next batch, while the spool takes them
        return added

    def persist(self) -> None:
        """Write the counters where operators read them. They live in memory: a write that fails
        (a full disk) loses nothing, and the next one catches up."""
        try:
            counters.persist(get_config()["SPOOL_DIR"])
        except OSError as exc:
            self.errors.report("could not write its counters; they stay in memory", exc)

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
        self.stopping.set()
        # The builder first: its last pass may open the sender (a worker stopped before its
        # first flush), so the sender's thread is read only once the builder has returned.
        for name in ("thread", "sender_thread"):
            thread = getattr(self, name)
            if thread is not None and thread.is_alive():
                self.wake.set()
                self.send_wake.set()
                thread.join(max(0.0, deadline - time.monotonic()))
        left = self.spool.count() if self.spool is not None else 0
        stuck = [t.name for t in (self.thread, self.sender_thread) if t is not None and t.is_alive()]
        if stuck:
            # A send is hung (a blackholed receiver): what is spooled stays on disk for the
            # next process; the daemon threads die with this one.
            logger.warning("Event Trail delivery did not stop within %.1fs (%s); %d events "
                           "stay in the spool", timeout, ", ".join(stuck), left)
            counters.incr("enqueued", len(self.queue))
            counters.drop("shutdown", len(self.queue) + self.in_memory())
            return left + len(self.queue) + self.in_memory()
        if self.queue:  # the spool never opened: what is queued cannot be kept
            counters.incr("enqueued", len(self.queue))
            counters.drop("shutdown", len(self.queue))
            self.queue.clear()
        if self.unspooled and self.spool is not None:  # one last try to keep them on disk
            self._write_backoff.succeeded()
            self._write(self.spool)
        if self.unspooled:
            counters.drop("shutdown", len(self.unspooled))
            logger.warning("Event Trail stopping: %d events could not be written to the spool",
                           len(self.unspooled))
            self.unspooled.clear()
        if self.spool is not None:
            if left and isinstance(self.spool, MemorySpool):
                counters.drop("shutdown", left)
            if left:
                logger.warning("Event Trail stopping with %d events left in the spool", left)
            self.spool.close()
        if self.sender is not None:
            self.sender.close()
        elif self._sink is not None:
            self._sink.close()
        self.persist()
        return left
