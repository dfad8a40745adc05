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
#   shutdown          the process stopped with it still in memory (what is spooled stays)
#   sink_down         kept for operators' dashboards of earlier versions; nothing counts it now
DROP_REASONS = ("queue_full", "invalid", "processor", "duplicate", "spool_unwritable",
                "spool_full", "spool_expired", "shutdown", "sink_down")
COUNTERS = ("enqueued", "adopted", "delivered", "spooled", "retried", "send_errors",
            "spool_errors", "internal_error") + tuple(
    f"dropped.{reason}" for reason in DROP_REASONS
)


class Counters:
    """Thread-safe counters plus the last error. The hot path never touches these."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
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
        """Write this process's counters where ``aggregate`` finds them (atomic rename)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".stats-{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, path / f"stats-{os.getpid()}.json")


counters = Counters()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would stay held forever in the child.
    counters._lock = threading.Lock()
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
            data = json.loads(file.read_text())
        except (OSError, ValueError):
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
