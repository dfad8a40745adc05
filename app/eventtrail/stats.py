"""Delivery counters, per process, persisted so operators see the sum over all workers."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

# Why an event that was handed off left without being delivered. Every one has a name, so that
# in each process enqueued + adopted == delivered + in_spool + in_memory + the sum of these
# (adopted: spooled by a process that died, taken over by this one):
#   queue_full        the in-memory hand-off was full (the worker is behind, or the spool failing)
#   invalid           it could not be built into a document (a bug: see last_error)
#   processor         a processor dropped it on purpose (an opt-out, say)
#   duplicate         an event with the same event.id was already waiting in the spool
#   spool_unwritable  the spool could not be written (a full disk, most often) and the events
#                     waiting in memory for it passed QUEUE_SIZE: the oldest go
#   spool_full        the spool passed SPOOL_MAX_EVENTS: the oldest go
#   spool_expired     it waited in the spool longer than SPOOL_MAX_AGE
#   too_large         the receiver refused it alone as too large (HTTP 413): larger batches
#                     are split until one event is left, and that one can never be delivered
#   shutdown          the process stopped with it still in memory (what is spooled stays)
#   sink_down         kept for operators' dashboards of earlier versions; nothing counts it now
DROP_REASONS = ("queue_full", "invalid", "processor", "duplicate", "spool_unwritable",
                "spool_full", "spool_expired", "too_large", "shutdown", "sink_down")
COUNTERS = ("enqueued", "adopted", "delivered", "spooled", "retried", "send_errors",
            "spool_errors", "internal_error") + tuple(
    f"dropped.{reason}" for reason in DROP_REASONS
)


SLOT = 4096  # bytes per copy of a process's counters in its stats file


def read_stats(path: Path) -> dict[str, Any] | None:
    """A process's counters: the newest whole slot of its stats file (or a plain JSON file)."""
    raw = path.read_bytes()
    try:
        found: dict[str, Any] = json.loads(raw)
        return found
    except ValueError:
        pass
    best: dict[str, Any] | None = None
    size = len(raw) // 2
    for part in (raw[:size], raw[size:]):
        try:
            slot = json.loads(part.rstrip(b" \0"))
        except ValueError:
            continue  # being written, or never written
        if isinstance(slot, dict) and (best is None or slot.get("seq", 0) > best.get("seq", 0)):
            best = slot
    return best


class Counters:
    """Thread-safe counters plus the last error. The hot path never touches these."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._file: int | None = None  # the stats file, open for overwriting in place
        self._file_path: Path | None = None
        self._slot = SLOT
        self._seq = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.values: dict[str, int] = dict.fromkeys(COUNTERS, 0)
            self.last_error: str | None = None
            self.last_error_at: float | None = None
            self.started_at = time.time()

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0) + amount

    def drop(self, reason: str, amount: int = 1) -> None:
        self.incr(f"dropped.{reason}", amount)

    def error(self, message: str) -> None:
        with self._lock:
            self.last_error = message[:500]
            self.last_error_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pid": os.getpid(),
                "counters": dict(self.values),
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "started_at": self.started_at,
                "updated_at": time.time(),
            }

    def persist(self, directory: str | Path) -> None:
        """Write this process's counters where ``aggregate`` finds them.

        The file is made once, at its full size, then only overwritten in place, in two
        alternating slots with a sequence number: a write that needs no new block works on a
        full disk (where the counts matter most), and a reader always finds one whole slot.
        """
        with self._lock:
            self._seq += 1
            seq = self._seq
        text = json.dumps({**self.snapshot(), "seq": seq}).encode()
        path = Path(directory) / f"stats-{os.getpid()}.json"
        if self._file is None or self._file_path != path or len(text) > self._slot:
            self._open_slots(path, max(self._slot, len(text)))
        assert self._file is not None
        os.pwrite(self._file, text.ljust(self._slot), (seq % 2) * self._slot)

    def _open_slots(self, path: Path, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._slot = -(-size // SLOT) * SLOT
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, 2 * self._slot)  # every block it will ever need, now
        except OSError:
            os.close(fd)
            raise
        old, self._file, self._file_path = self._file, fd, path
        if old is not None:
            os.close(old)


counters = Counters()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would stay held forever in the child, and the
    # parent's stats file is the parent's.
    counters._lock = threading.Lock()
    counters._file = None
    counters.reset()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def aggregate(directory: str | Path, spooled_now: int | None = None) -> dict[str, Any]:
    """Counters summed over every process that ever wrote to ``directory``.

    Dead processes keep counting: their totals are history, not noise.
    """
    totals: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    processes = []
    last_error: tuple[float, str] | None = None
    for file in sorted(Path(directory).glob("stats-*.json")):
        try:
            data = read_stats(file)
        except OSError:
            continue
        if data is None:
            continue
        for name, value in data.get("counters", {}).items():
            totals[name] = totals.get(name, 0) + int(value)
        if data.get("last_error") and (last_error is None or data["last_error_at"] > last_error[0]):
            last_error = (data["last_error_at"], data["last_error"])
        processes.append(
            {"pid": data["pid"], "alive": _alive(int(data["pid"])), "updated_at": data["updated_at"]}
        )
    dropped = {k.split(".", 1)[1]: v for k, v in totals.items() if k.startswith("dropped.")}
    # The browser collector's own counts: what it accepted, and what it refused before hand-off.
    collect = {k.split(".", 1)[1]: v for k, v in totals.items() if k.startswith("collect.")}
    result: dict[str, Any] = {
        "enqueued": totals["enqueued"],
        "adopted": totals["adopted"],
        "delivered": totals["delivered"],
        "spooled": totals["spooled"],
        "retried": totals["retried"],
        "send_errors": totals["send_errors"],
        "spool_errors": totals["spool_errors"],
        "internal_error": totals["internal_error"],
        "dropped": dropped,
        "collect": collect,
        "last_error": last_error[1] if last_error else None,
        "processes": processes,
    }
    if spooled_now is not None:
        result["in_spool"] = spooled_now
    return result
