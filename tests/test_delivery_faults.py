"""Delivery under faults, on real sockets and real processes.

Each test asserts the invariant with exact counts,
``enqueued + adopted == delivered + in_spool + in_memory + Σ dropped[reason]``,
that every event arrives, and the duplicate bound: at most one batch re-sent per failure (HTTP is
acknowledged per batch, so a batch is sent again only when its answer was lost).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.test import override_settings
from eventtrail.build import prepare
from eventtrail.capture import draft_for
from eventtrail.delivery.sinks import LogstashHttpSink
from eventtrail.delivery.spool import SqliteSpool
from eventtrail.delivery.worker import Handoff
from eventtrail.stats import counters

from tests.support.app_process import script
from tests.support.invariant import assert_balanced
from tests.support.receivers import Blackhole, HttpReceiver, free_port
from tests.test_delivery import FAST, drafts

BATCH = 50
HTTP = {**FAST, "LOGSTASH_USER": "writer", "LOGSTASH_PASSWORD": "s3cret", "BATCH_SIZE": BATCH,
        "QUEUE_SIZE": 100_000}


@pytest.fixture
def http(tmp_path):
    with override_settings(EVENTTRAIL=HTTP):
        counters.reset()
        yield


def worker(port: int, tmp_path: Path) -> Handoff:
    return Handoff(sink=LogstashHttpSink([f"http://127.0.0.1:{port}"]),
                   spool=SqliteSpool(tmp_path, 1_000_000, 3600))


def steady(handoff: Handoff, items: list, seconds: float) -> threading.Thread:
    """Put ``items`` at an even pace over ``seconds``, as requests would."""
    def run():
        gap = seconds / len(items)
        start = time.monotonic()
        for i, draft in enumerate(items):
            handoff.put(draft)
            delay = start + (i + 1) * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def settle(handoff: Handoff, *receivers: HttpReceiver, expect: int) -> dict:
    """Wait until every expected event arrived, stop the worker, and check the invariant."""
    deadline = time.monotonic() + 60
    while len({i for r in receivers for i in r.received.ids()}) < expect:
        assert time.monotonic() < deadline, "not every event arrived"
        time.sleep(0.05)
    assert handoff.flush(10)
    handoff.stop(timeout=5)
    return assert_balanced(handoff)


def arrived(*receivers: HttpReceiver) -> list[str]:
    return [i for r in receivers for i in r.received.ids()]


def exact(terms: dict, n: int, dropped: dict | None = None) -> None:
    assert (terms["enqueued"], terms["adopted"], terms["in_spool"], terms["in_memory"]) == \
        (n, 0, 0, 0), terms
    assert terms["dropped"] == (dropped or {}), terms
    assert terms["delivered"] == n - sum((dropped or {}).values()), terms


def failures() -> int:
    return counters.snapshot()["counters"]["send_errors"]


def test_a_receiver_that_flaps_during_a_steady_stream(http, tmp_path):
    port = free_port()
    first = HttpReceiver(port=port).start()
    handoff = worker(port, tmp_path)
    items = drafts(3000)
    stream = steady(handoff, items, 3.0)
    time.sleep(0.8)
    first.stop()  # down mid-stream
    time.sleep(1.0)
    second = HttpReceiver(port=port).start()  # and up again
    stream.join()
    terms = settle(handoff, first, second, expect=3000)
    second.stop()
    ids = arrived(first, second)
    assert len(set(ids)) == 3000
    assert {d["url"]["path"] for r in (first, second) for d in r.received.docs} == \
        {f"/p/{i}" for i in range(3000)}
    exact(terms, 3000)
    assert failures() > 0 and second.received.ids()  # it was down, and delivery resumed
    assert len(ids) - 3000 <= failures() * BATCH


def test_a_receiver_that_accepts_and_never_answers(http, tmp_path):
    hole = Blackhole()
    port = hole.port
    handoff = worker(port, tmp_path)
    stream = steady(handoff, drafts(1000), 1.0)
    stream.join()
    time.sleep(1.5)  # at least one send timed out (SEND_TIMEOUT 1 s)
    assert failures() >= 1 and handoff.thread.is_alive()
    hole.close()
    receiver = HttpReceiver(port=port).start()
    terms = settle(handoff, receiver, expect=1000)
    receiver.stop()
    exact(terms, 1000)
    assert len(receiver.received.ids()) == 1000  # nothing taken while it hung: nothing twice


def test_a_receiver_that_answers_500(http, tmp_path):
    receiver = HttpReceiver().start()
    receiver.script = [500, 503, 500, 502]
    handoff = worker(receiver.port, tmp_path)
    steady(handoff, drafts(1000), 0.5).join()
    terms = settle(handoff, receiver, expect=1000)
    receiver.stop()
    exact(terms, 1000)
    assert failures() == 4
    assert len(receiver.received.ids()) == 1000  # refused batches were not taken: none twice


def test_a_receiver_that_answers_413_to_large_batches_gets_them_split(http, tmp_path):
    receiver = HttpReceiver().start()
    receiver.max_docs = 7
    handoff = worker(receiver.port, tmp_path)
    steady(handoff, drafts(500), 0.3).join()
    terms = settle(handoff, receiver, expect=500)
    receiver.stop()
    exact(terms, 500)
    assert receiver.too_large > 0 and failures() == 0  # split at once, no backoff
    assert len(receiver.received.ids()) == 500
    assert max(receiver.received.batch_sizes) <= 7


def test_one_event_too_large_for_the_receiver_is_dropped_and_counted(http, tmp_path):
    items = drafts(300)
    big = draft_for("page.view", {"url.path": "/" + "x" * 5000, "http.request.method": "GET",
                                  "http.response.status_code": 200})
    items.insert(150, big)
    sizes = sorted(len(prepare(d)[1].encode()) for d in items)
    receiver = HttpReceiver().start()
    receiver.max_bytes = (sizes[-1] + sizes[-2]) // 2  # any other event fits, alone or in pairs
    assert receiver.max_bytes > 2 * sizes[-2] + 2
    handoff = worker(receiver.port, tmp_path)
    steady(handoff, items, 0.3).join()
    terms = settle(handoff, receiver, expect=300)
    receiver.stop()
    exact(terms, 301, {"too_large": 1})
    assert len(receiver.received.ids()) == 300
    assert not [d for d in receiver.received.docs if len(d["url"]["path"]) > 100]
    assert counters.snapshot()["last_error"].startswith("logstash-http")


def test_a_receiver_that_closes_the_connection_halfway_through_its_answer(http, tmp_path):
    receiver = HttpReceiver().start()
    receiver.script = ["half", "half", "half"]
    handoff = worker(receiver.port, tmp_path)
    steady(handoff, drafts(1000), 0.5).join()
    terms = settle(handoff, receiver, expect=1000)
    receiver.stop()
    exact(terms, 1000)
    ids = receiver.received.ids()
    assert failures() == 3
    assert 0 < len(ids) - 1000 <= 3 * BATCH  # each lost answer re-sends its batch, once


def app_script(tmp_path: Path, port: int, body: str) -> str:
    """The app in another process: HTTP to ``port``, batches of BATCH, its spool in
    ``tmp_path``, dead spools adopted every 0.2 s; then ``body``."""
    return script({"SINK": "logstash-http", "SPOOL": True, "SPOOL_DIR": str(tmp_path),
                   "LOGSTASH_HOSTS": [f"http://127.0.0.1:{port}"], "LOGSTASH_USER": "writer",
                   "LOGSTASH_PASSWORD": "s3cret", "BATCH_SIZE": BATCH, "FLUSH_INTERVAL": 0.02,
                   "RETRY_BACKOFF": [0.05], "SEND_TIMEOUT": 30, "QUEUE_SIZE": 100000},
                  body, adopt_every=0.2)


@pytest.mark.timeout(180)
def test_sigkill_during_a_send_then_a_restart(tmp_path):
    receiver = HttpReceiver().start()
    receiver.script = ["slow"]
    receiver.slow_seconds = 2.0  # it takes the batch, but only after its sender is dead
    body = r"""
h = delivery.handoff()
for i in range(300):
    h.put(draft_for("page.view", {"url.path": "/kill/%d" % i}))
print("put", flush=True)
time.sleep(60)
"""
    app = subprocess.Popen([sys.executable, "-c", app_script(tmp_path, receiver.port, body)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout.readline().strip() == "put"
        deadline = time.monotonic() + 30
        while receiver.received.requests < 1:  # a send is in flight
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait()
    restart = r"""
from django.core.handlers.wsgi import WSGIHandler
application = WSGIHandler()  # a server starting: it adopts the dead one's spool at once
h = delivery.handoff()
deadline = time.time() + 60
while (h.spool is None or h.spool.count() or not h.flush(1)) and time.time() < deadline:
    time.sleep(0.05)
h.stop(5)
print(json.dumps(ledger(h)), flush=True)
"""
    again = subprocess.run([sys.executable, "-c", app_script(tmp_path, receiver.port, restart)],
                           capture_output=True, text=True, timeout=120)
    receiver.stop()
    assert again.returncode == 0, again.stderr[-2000:]
    terms = json.loads(again.stdout.strip().splitlines()[-1])
    # The new process owns what the dead one spooled: all 300, since the dead one acknowledged
    # nothing (its one send never got an answer).
    assert (terms["enqueued"], terms["adopted"], terms["delivered"], terms["in_spool"],
            terms["dropped"]) == (0, 300, 300, 0, {}), terms
    ids = receiver.received.ids()
    assert len(set(ids)) == 300
    assert len(ids) - 300 <= BATCH  # the batch in flight at the kill, at most, came twice


def wait_dead(pid: int, timeout: float = 30) -> None:
    """Until ``pid`` (not our child) has exited: gone, or a zombie waiting for its parent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state in {"Z", "X"}:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die within {timeout} s of SIGKILL")


@pytest.mark.timeout(180)  # a child stuck on its pipe must fail the test, not hang the suite
def test_two_forked_processes_each_sending_one_killed(tmp_path):
    """A parent forks two workers; each spools 400 events while the receiver is down; one is
    SIGKILLed; the survivor adopts its spool and delivers both, each event once."""
    port = free_port()
    body = r"""
import signal
r, w = os.pipe()
pids = []
for n in range(2):
    pid = os.fork()
    if pid == 0:
        h = delivery.handoff()
        for i in range(400):
            h.put(draft_for("page.view", {"url.path": "/fork%d/%d" % (n, i)}))
        while h.spool is None or h.spool.count() < 400:
            time.sleep(0.02)
        # One write() of a whole line each: the two children share the pipe, and a line
        # written in pieces (print's, unbuffered) can interleave with the other's.
        os.write(1, ("spooled %d %d\n" % (n, os.getpid())).encode())
        sys.stdin.readline()  # until the test says: deliver
        from pathlib import Path
        others = lambda: [p for p in Path(h.spool.dir).glob("spool-*.sqlite") if p != h.spool.path]
        deadline = time.time() + 60
        while (others() or h.spool.count() or not h.flush(1)) and time.time() < deadline:
            time.sleep(0.05)
        h.stop(5)
        os.write(1, ("ledger " + json.dumps(ledger(h)) + "\n").encode())
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""
    parent = subprocess.Popen([sys.executable, "-c", app_script(tmp_path, port, body)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = [parent.stdout.readline().split() for _ in range(2)]
        assert sorted(r[:2] for r in ready) == [["spooled", "0"], ["spooled", "1"]], ready
        victim = int(next(r[2] for r in ready if r[1] == "0"))
        os.kill(victim, signal.SIGKILL)
        # Both children wait on the same stdin: until the victim is dead, it could still take
        # the "go" meant for the survivor (a process woken by data reads it before it dies).
        wait_dead(victim)
        receiver = HttpReceiver(port=port).start()
        parent.stdin.write("go\n")
        parent.stdin.flush()
        line = parent.stdout.readline().split(maxsplit=1)
        assert line[0] == "ledger", line
        parent.wait(60)
    finally:
        parent.kill()
    receiver.stop()
    terms = json.loads(line[1])
    assert (terms["enqueued"], terms["adopted"], terms["delivered"], terms["in_spool"],
            terms["in_memory"], terms["dropped"]) == (400, 400, 800, 0, 0, {}), terms
    ids = receiver.received.ids()
    assert len(ids) == len(set(ids)) == 800
    paths = sorted(d["url"]["path"] for d in receiver.received.docs)
    assert paths == sorted([f"/fork0/{i}" for i in range(400)] + [f"/fork1/{i}" for i in range(400)])
