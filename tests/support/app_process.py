"""The app in a process of its own, for tests that kill, restart or fork it: a script that sets
Django up with the demo's settings and ``EVENTTRAIL`` overrides, then runs a body."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

HEAD = r"""
import json, os, sys, time
sys.path[:0] = [{app!r}, {repo!r}]
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
from django.conf import settings
django.setup()
from django.test import override_settings
override_settings(EVENTTRAIL={{**settings.EVENTTRAIL, **{config!r}}}).enable()
import eventtrail.delivery.worker
eventtrail.delivery.worker.ADOPT_EVERY = {adopt_every!r}
from eventtrail import delivery
from eventtrail.capture import draft_for
from tests.support.invariant import ledger
"""

# A worker that spools ``n`` events (while the receiver is down), says so and waits to be killed.
SPOOL_AND_WAIT = r"""
h = delivery.handoff()
for i in range({n}):
    h.put(draft_for("page.view", {{"url.path": "/crash/%d" % i}}))
while h.spool is None or h.spool.count() < {n}:
    time.sleep(0.02)
print("spooled", flush=True)
time.sleep(60)
"""


def script(config: dict[str, Any], body: str, adopt_every: float = 30.0) -> str:
    """Python source: Django with ``config`` over the demo's EVENTTRAIL (plain values only), the
    worker adopting dead spools every ``adopt_every`` seconds, then ``body``."""
    return HEAD.format(app=str(REPO / "app"), repo=str(REPO), config=config,
                       adopt_every=adopt_every) + body


def crash_with_spooled(config: dict[str, Any], n: int) -> None:
    """A worker that spooled ``n`` events under ``config``, then was SIGKILLed."""
    child = subprocess.Popen([sys.executable, "-c", script(config, SPOOL_AND_WAIT.format(n=n))],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "spooled"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
