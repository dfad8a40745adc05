"""The full-disk scenario, run by tests/test_full_disk.py in its own mount namespace with the
spool on a small tmpfs: writes there fail with ENOSPC for real.

A steady stream of events while the receiver is down fills the disk; the receiver comes back
while the disk is still full; then the disk is freed. Prints one JSON line: the counters, what
waits, and what the receiver got.

    python -m tests.support.full_disk SPOOL_DIR
"""
import json
import os
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.test import override_settings  # noqa: E402
from eventtrail.capture import draft_for  # noqa: E402
from eventtrail.delivery import Handoff  # noqa: E402
from eventtrail.delivery.sinks import LogstashHttpSink  # noqa: E402
from eventtrail.delivery.spool import SqliteSpool  # noqa: E402
from eventtrail.stats import aggregate, counters  # noqa: E402

from tests.support.invariant import ledger  # noqa: E402
from tests.support.receivers import HttpReceiver, free_port  # noqa: E402

EVENTS, BATCH = 3000, 100


def main(directory: str) -> None:
    spool_dir = Path(directory)
    filler = spool_dir / "filler"
    settings = {"FLUSH_INTERVAL": 0.05, "RETRY_BACKOFF": [0.05, 0.1, 0.2], "SEND_TIMEOUT": 2.0,
                "BATCH_SIZE": BATCH, "QUEUE_SIZE": 600, "SPOOL_DIR": str(spool_dir),
                "LOGSTASH_USER": "writer", "LOGSTASH_PASSWORD": "s3cret"}
    port = free_port()
    with override_settings(EVENTTRAIL=settings):
        counters.reset()
        spool = SqliteSpool(spool_dir / "spool", 1_000_000, 3600)
        counters.persist(spool_dir)  # a running worker's stats file exists before the disk fills
        # Leave room for a few hundred events only.
        free = os.statvfs(spool_dir).f_bavail * os.statvfs(spool_dir).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 300_000))
        handoff = Handoff(sink=LogstashHttpSink([f"http://127.0.0.1:{port}"]), spool=spool)
        for start in range(0, EVENTS // 2, 50):  # receiver down
            for draft in drafts(50, start):
                handoff.put(draft)
            time.sleep(0.02)
        full = counters.snapshot()["counters"]["spool_errors"] > 0
        counters.persist(spool_dir)  # on the full disk: what operators read must be current
        persisted_while_full = aggregate(spool_dir)["enqueued"]
        receiver = HttpReceiver(port=port).start()  # back, while the disk is still full
        for start in range(EVENTS // 2, EVENTS, 50):
            for draft in drafts(50, start):
                handoff.put(draft)
            time.sleep(0.02)
        time.sleep(1.0)
        filler.unlink()  # space again
        drained = handoff.flush(60)
        terms = ledger(handoff)
        handoff.stop(timeout=10)
        receiver.stop()
        ids = receiver.received.ids()
        print(json.dumps({
            "disk_filled": full, "drained": drained, "at_rest": terms,
            "after_stop": ledger(handoff), "counters": counters.snapshot()["counters"],
            "received": len(ids), "distinct": len(set(ids)), "batch": BATCH,
            "persisted_while_full": persisted_while_full, "persisted_at_the_end":
            aggregate(spool_dir)["enqueued"],
        }))


def drafts(n, start):
    return [draft_for("page.view", {"url.path": f"/p/{start + i}", "http.request.method": "GET",
                                    "http.response.status_code": 200,
                                    "user_agent.original": "Mozilla/5.0 Firefox/120.0"},
                      remote="198.51.100.1", duration_ns=1000)
            for i in range(n)]


if __name__ == "__main__":
    main(sys.argv[1])
