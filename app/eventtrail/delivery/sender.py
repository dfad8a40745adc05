"""The sender: takes batches from the spool to the sink, and backs off when that fails."""
from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence

from eventtrail.delivery.sinks import DeliveryError, Sink
from eventtrail.delivery.spool import Spool
from eventtrail.stats import counters

logger = logging.getLogger("eventtrail.delivery")


class Backoff:
    """Delays between failed attempts: each failure takes the next, the last one repeats."""

    def __init__(self, delays: Sequence[float]) -> None:
        self.delays = list(delays) or [1.0]
        self.attempt = 0
        self.retry_at = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.retry_at

    def failed(self) -> float:
        delay = self.delays[min(self.attempt, len(self.delays) - 1)]
        self.attempt += 1
        self.retry_at = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self.attempt = 0
        self.retry_at = 0.0


class ErrorLog:
    """Logs each distinct error once with its traceback, and its repeats at DEBUG: a bug hit on
    every pass, or a sink that cannot be built for a day, writes one traceback, not thousands.
    Distinct means the exception's type and the line that raised it. The counters and
    ``last_error`` (``eventtrail_stats``) still see every occurrence."""

    LIMIT = 256  # distinct errors remembered; past it, each is logged once more

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, int]] = set()

    def report(self, message: str, exc: BaseException) -> None:
        frames = traceback.extract_tb(exc.__traceback__)
        key = (type(exc).__qualname__, frames[-1].filename if frames else "",
               (frames[-1].lineno or 0) if frames else 0)
        if key in self.seen:
            logger.debug("Event Trail %s (seen before): %r", message, exc)
            return
        if len(self.seen) >= self.LIMIT:
            self.seen.clear()
        self.seen.add(key)
        logger.error("Event Trail %s", message, exc_info=exc)


class Sender:
    """Sends what the spool holds, oldest first. It opens the sink itself, so a sink whose
    constructor raises (a bad option, a host that cannot be resolved) is retried with backoff
    like a send that fails, and what waits stays in the spool meanwhile."""

    def __init__(self, spool: Spool, open_sink: Callable[[], Sink], batch_size: int,
                 backoff: Backoff, sink: Sink | None = None, errors: ErrorLog | None = None
                 ) -> None:
        self.spool = spool
        self.open_sink = open_sink
        self.batch_size = batch_size
        # What is sent at once: BATCH_SIZE, halved while the receiver answers 413 (too large),
        # doubled back after each batch it takes.
        self.limit = batch_size
        self.backoff = backoff
        self.sink = sink
        self.errors = errors or ErrorLog()
        # A batch the sink took but the spool could not forget (a full disk fails the DELETE):
        # (last seq, how many). Nothing more is sent until it is acknowledged, so a crash meanwhile
        # re-sends at most this one batch.
        self.unacked: tuple[int, int] | None = None
        # Its own pace: the sink is fine (it took the batch), only the disk is not.
        self.ack_backoff = Backoff(backoff.delays)

    def step(self) -> None:
        """Send until the spool is empty or a send fails; at once returns while backing off."""
        if self.unacked is not None and (not self.ack_backoff.ready()
                                         or not self._ack(*self.unacked)):
            return
        if not self.backoff.ready():
            return
        if self.sink is None:
            try:
                self.sink = self.open_sink()
            except Exception as exc:
                self._failed("sink", f"cannot open the sink: {exc!r}", 0, exc)
                return
        sink = self.sink
        while True:
            rows = self.spool.peek(self.limit)
            if not rows:
                return
            try:
                sink.send([doc for _, doc in rows])
            except Exception as exc:
                delivered = exc.delivered if isinstance(exc, DeliveryError) else 0
                if delivered and not self._ack(rows[delivered - 1][0], delivered):
                    return
                if isinstance(exc, DeliveryError) and exc.too_large and not delivered:
                    if self._too_large(rows, exc):
                        continue  # a smaller batch at once: the receiver is up
                    return
                # A refused or failed delivery is an outage; anything else is a bug in the sink.
                self._failed(sink.name, str(exc) or repr(exc), len(rows) - delivered,
                             None if isinstance(exc, DeliveryError | OSError) else exc)
                return
            self.backoff.succeeded()  # the sink took it, whatever the spool says next
            self.limit = min(self.batch_size, self.limit * 2)
            if not self._ack(rows[-1][0], len(rows)):
                return

    def _too_large(self, rows: list[tuple[int, str]], exc: DeliveryError) -> bool:
        """The receiver refused the batch for its size: halve it and go on, or, when one event
        alone is refused, drop it under ``too_large``: it can never be delivered, and it must
        not hold back the ones behind it."""
        if len(rows) > 1:
            self.limit = max(1, len(rows) // 2)
            return True
        try:
            self.spool.ack(rows[0][0])
        except Exception as ack_exc:
            self._failed("spool", f"could not drop an event too large to send: {ack_exc!r}", 1)
            return False
        counters.drop("too_large")
        counters.error(f"{self.sink.name if self.sink else 'sink'}: {exc}")
        logger.warning("Event Trail: the receiver refuses one event as too large (%d bytes); "
                       "dropped as too_large", len(rows[0][1].encode()))
        return True

    def _ack(self, upto: int, count: int) -> bool:
        """Forget a delivered batch; it counts as delivered once the spool has forgotten it."""
        try:
            self.spool.ack(upto)
        except Exception as exc:
            self.unacked = (upto, count)
            delay = self.ack_backoff.failed()
            counters.incr("spool_errors")
            counters.error(f"spool: could not forget a delivered batch: {exc!r}")
            self.errors.report(f"could not forget {count} delivered events in the spool "
                               f"({exc!r}); nothing more is sent until it can, retry in "
                               f"{delay:.1f}s", exc)
            return False
        self.unacked = None
        self.ack_backoff.succeeded()
        counters.incr("delivered", count)
        return True

    def _failed(self, name: str, message: str, waiting: int,
                bug: BaseException | None = None) -> None:
        delay = self.backoff.failed()
        counters.incr("send_errors")
        counters.incr("retried", waiting)
        counters.error(f"{name}: {message}")
        if bug is not None:
            self.errors.report(f"{name}: {message}; retry in {delay:.1f}s", bug)
        else:
            logger.warning("Event Trail %s: %s; retry in %.1fs", name, message, delay)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
