"""Time-ordered UUIDv7 ids, made at capture; the document id and the primary key."""
from __future__ import annotations

import os
import threading
import time
from random import Random

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def uuid7(ms: int | None = None, rng: Random | None = None) -> str:
    """A UUIDv7 string. Ids made in one process sort in creation order, even within one ms.

    ``ms`` back-dates the id (activity history); ``rng`` makes it deterministic.
    """
    global _last_ms, _counter
    if ms is None:
        now = time.time_ns() // 1_000_000
        with _lock:
            if now <= _last_ms:
                # Same millisecond (or the clock stepped back): keep order with the 12-bit counter.
                _counter += 1
                if _counter > 0xFFF:
                    _last_ms += 1
                    _counter = 0
                now = _last_ms
            else:
                _last_ms = now
                _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            rand_a = _counter
        ms = now
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    elif rng is None:
        rand_a = int.from_bytes(os.urandom(2), "big") & 0xFFF
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    else:
        rand_a = rng.getrandbits(12)
        rand_b = rng.getrandbits(62)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_ms(value: str) -> int:
    """The Unix milliseconds encoded in a UUIDv7 string."""
    return int(value.replace("-", "")[:12], 16)
