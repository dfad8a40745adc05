"""Time-ordered UUIDv7 ids, made at capture; the document id and the primary key."""
from __future__ import annotations

import os
import threading
import time
from random import Random

_lock = threading.Lock()
_last_ms = 0
_counter = 0

# Random bits come from the OS CSPRNG, read 4 KB at a time. Two getrandom() calls per id cost
# the delivery worker a third of its time, and each one releases the GIL to request threads.
_POOL_SIZE = 4096
_pool_lock = threading.Lock()
_pool = b""
_pool_at = 0


def _random(n: int) -> int:
    global _pool, _pool_at
    with _pool_lock:
        if _pool_at + n > len(_pool):
            _pool, _pool_at = os.urandom(_POOL_SIZE), 0
        chunk = _pool[_pool_at : _pool_at + n]
        _pool_at += n
    return int.from_bytes(chunk, "big")


def _after_fork_in_child() -> None:
    """A forked child must never reuse its parent's random bytes, nor a lock held mid-fork."""
    global _lock, _pool_lock, _pool, _pool_at
    _lock, _pool_lock = threading.Lock(), threading.Lock()
    _pool, _pool_at = b"", 0


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
                _counter = _random(2) & 0x3FF
            rand_a = _counter
        ms = now
        rand_b = _random(8) & ((1 << 62) - 1)
    elif rng is None:
        bits = _random(10)
        rand_a = (bits >> 64) & 0xFFF
        rand_b = bits & ((1 << 62) - 1)
    else:
        rand_a = rng.getrandbits(12)
        rand_b = rng.getrandbits(62)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_ms(value: str) -> int:
    """The Unix milliseconds encoded in a UUIDv7 string."""
    return int(value.replace("-", "")[:12], 16)
