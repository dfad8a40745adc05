"""Delivery against real local receivers: acks, outages, crashes, retries, forks."""
import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from django.test import override_settings
from eventtrail import schema
from eventtrail.capture import draft_for
from eventtrail.delivery import Handoff
from eventtrail.delivery.sinks import LogstashHttpSink, LogstashTcpSink
from eventtrail.delivery.spool import MemorySpool, SqliteSpool
from eventtrail.stats import counters

from tests.support.app_process import crash_with_spooled
from tests.support.invariant import assert_balanced
from tests.support.receivers import Blackhole, HttpReceiver, TcpReceiver, free_port

FAST = {"FLUSH_INTERVAL": 0.02, "RETRY_BACKOFF": [0.05, 0.1], "SEND_TIMEOUT": 1.0}


def drafts(n, action="page.view", start=0):
    return [
        draft_for(action, {"url.path": f"/p/{start + i}", "http.request.method": "GET",
                           "http.response.status_code": 200, "user.id": str(i % 7),
                           "user_agent.original": "Mozilla/5.0 Firefox/120.0"},
                  remote="198.51.100.1", duration_ns=1000 + i)
        for i in range(n)
    ]


def run(handoff, items):
    for draft in items:
        handoff.put(draft)


@pytest.fixture
def fast():
    with override_settings(EVENTTRAIL={**FAST, "QUEUE_SIZE": 50_000}):
        counters.reset()
        yield


def stop(handoff):
    """Stop the worker; then every event it was given is accounted for."""
    handoff.stop(timeout=5)
    assert_balanced(handoff)


def test_tcp_delivers_each_event_once_as_one_schema_valid_document(fast):
    receiver = TcpReceiver().start()
    handoff = Handoff(sink=LogstashTcpSink([f"tcp://127.0.0.1:{receiver.port}"]),
                      spool=MemorySpool(100_000))
    try:
        run(handoff, drafts(1000))
        assert receiver.received.wait_for(1000)
        assert handoff.flush(10)
    finally:
        stop(handoff)
        receiver.stop()
    docs = receiver.received.docs
    assert len(docs) == 1000 and len({d["event"]["id"] for d in docs}) == 1000
    assert receiver.received.bad_lines == 0
    for doc in docs:
        assert schema.errors(doc, {schema.Producer.CAPTURE}) == []
        assert set(doc) <= {"@timestamp", "ecs", "message", "event", "user", "source", "url",
                            "http", "user_agent", "service", "eventtrail"}
    assert counters.snapshot()["counters"]["delivered"] == 1000


def test_http_sends_batches_with_basic_auth(fast):
    receiver = HttpReceiver().start()
    with override_settings(EVENTTRAIL={**FAST, "LOGSTASH_USER": "writer",
                                       "LOGSTASH_PASSWORD": "s3cret"}):
        handoff = Handoff(sink=LogstashHttpSink([f"http://127.0.0.1:{receiver.port}"]),
                          spool=MemorySpool(100_000))
        try:
            run(handoff, drafts(1200))
            assert receiver.received.wait_for(1200)
        finally:
            stop(handoff)
            receiver.stop()
    assert receiver.auth_failures == 0
    assert len(receiver.received.docs) == 1200
    assert receiver.received.requests < 1200 / 10  # batched, not one request per event
    for doc in receiver.received.docs[:50]:
        assert schema.errors(doc, {schema.Producer.CAPTURE}) == []


def test_failover_to_the_second_host(fast):
    receiver = TcpReceiver().start()
    dead = free_port()
    handoff = Handoff(sink=LogstashTcpSink([f"tcp://127.0.0.1:{dead}",
                                            f"tcp://127.0.0.1:{receiver.port}"]),
                      spool=MemorySpool(10_000))
    try:
        run(handoff, drafts(300))
        assert receiver.received.wait_for(300)
    finally:
        stop(handoff)
        receiver.stop()
    assert len(receiver.received.ids()) == 300


def test_ten_thousand_events_survive_an_outage(fast, tmp_path):
    port = free_port()
    handoff = Handoff(sink=LogstashTcpSink([f"tcp://127.0.0.1:{port}"]),
                      spool=SqliteSpool(tmp_path, 1_000_000, 3600))
    try:
        sent = drafts(10_000)
        run(handoff, sent)
        deadline = time.monotonic() + 60
        while handoff.spool.count() < 10_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert handoff.spool.count() == 10_000
        assert counters.snapshot()["counters"]["retried"] > 0
        receiver = TcpReceiver(port).start()
        assert receiver.received.wait_for(10_000, timeout=90)
        assert handoff.flush(10)
    finally:
        stop(handoff)
    receiver.stop()
    ids = receiver.received.ids()
    assert len(set(ids)) == 10_000
    assert len(ids) == 10_000  # and nothing twice
    assert handoff.spool is not None


def tcp_spool(port: int, spool: Path) -> dict:
    """EVENTTRAIL for a worker in another process: TCP to ``port``, its spool in ``spool``."""
    return {"SINK": "logstash-tcp", "SPOOL": True, "SPOOL_DIR": str(spool),
            "LOGSTASH_HOSTS": [f"tcp://127.0.0.1:{port}"], "FLUSH_INTERVAL": 0.02,
            "RETRY_BACKOFF": [0.05], "QUEUE_SIZE": 100000}


def test_a_killed_process_leaves_its_spool_for_the_next_to_adopt(fast, tmp_path):
    port = free_port()
    crash_with_spooled(tcp_spool(port, tmp_path), 3000)
    assert list(tmp_path.glob("spool-*.sqlite"))
    receiver = TcpReceiver(port).start()
    adopter = Handoff(sink=LogstashTcpSink([f"tcp://127.0.0.1:{port}"]),
                      spool=SqliteSpool(tmp_path, 1_000_000, 3600))
    try:
        adopter.start()
        assert receiver.received.wait_for(3000, timeout=60)
        assert adopter.flush(10)
    finally:
        stop(adopter)
        receiver.stop()
    ids = receiver.received.ids()
    assert len(ids) == len(set(ids)) == 3000
    assert sorted(d["url"]["path"] for d in receiver.received.docs) == sorted(
        f"/crash/{i}" for i in range(3000))
    assert not [p for p in tmp_path.glob("spool-*.sqlite")]


@pytest.mark.parametrize("script", [[429, 429], [500, 503], ["slow"]], ids=["429", "5xx", "timeout"])
def test_http_errors_and_timeouts_are_retried(fast, script):
    receiver = HttpReceiver().start()
    receiver.script = list(script)
    receiver.slow_seconds = 2.5
    with override_settings(EVENTTRAIL={**FAST, "LOGSTASH_USER": "writer",
                                       "LOGSTASH_PASSWORD": "s3cret", "BATCH_SIZE": 1000}):
        counters.reset()
        handoff = Handoff(sink=LogstashHttpSink([f"http://127.0.0.1:{receiver.port}"]),
                          spool=MemorySpool(10_000))
        try:
            run(handoff, drafts(200))
            assert receiver.received.wait_for(200, timeout=30)
        finally:
            stop(handoff)
            receiver.stop()
    assert counters.snapshot()["counters"]["retried"] >= 200
    assert len(set(receiver.received.ids())) == 200
    assert counters.snapshot()["last_error"].startswith("logstash-http")


def test_a_blackholed_receiver_never_blocks_the_hand_off(tmp_path):
    hole = Blackhole()
    with override_settings(EVENTTRAIL={**FAST, "QUEUE_SIZE": 1000, "SEND_TIMEOUT": 30}):
        counters.reset()
        # HTTP waits for an answer that never comes (TCP would "deliver" into kernel buffers).
        handoff = Handoff(sink=LogstashHttpSink([f"http://127.0.0.1:{hole.port}"]),
                          spool=SqliteSpool(tmp_path, 1_000_000, 3600))
        try:
            items = drafts(200)
            run(handoff, items)
            # The worker is now stuck in a send: nothing drains the queue any more.
            deadline = time.monotonic() + 10
            while handoff.spool is None or handoff.spool.count() < 200:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            time.sleep(0.2)
            run(handoff, drafts(3000, start=200))
            # The builder keeps spooling meanwhile (it never waits on the sender), as fast as
            # the scheduler lets it: what the full queue refused is dropped and counted, the
            # rest spooled, none lost.
            dropped = counters.snapshot()["counters"].get("dropped.queue_full", 0)
            assert 0 < dropped <= 2000 and len(handoff.queue) <= 1000
            while handoff.queue or handoff.building:
                assert time.monotonic() < deadline + 20
                time.sleep(0.02)
            assert dropped + handoff.in_memory() + handoff.spool.count() == 3200
            assert handoff.thread.is_alive()
        finally:
            left = handoff.stop(timeout=0.5)
            hole.close()
    assert left >= 1200  # what was spooled stays spooled


def parent_and_two_forked_children_deliver(config: dict) -> list[int]:
    """Under ``config``: the parent puts events 0-99, forks two children that each put 100 of
    their own (1000-1099, 2000-2099) on a hand-off of their own and flush; then the parent
    flushes. Returns the children's wait statuses (0: flushed, on a hand-off of its own)."""
    from eventtrail import delivery

    delivery.shutdown(5)  # start from no hand-off, as a fresh gunicorn master does
    with override_settings(EVENTTRAIL={**FAST, "SPOOL": True, **config}):
        parent = delivery.handoff()
        for d in drafts(100, start=0):
            parent.put(d)
        children = []
        for n in range(2):
            pid = os.fork()
            if pid == 0:  # child: its own hand-off, never the parent's queue
                ok = False
                try:
                    signal.alarm(90)  # a hung child fails the test rather than the suite
                    mine = delivery.handoff()
                    ok = mine is not parent and not mine.queue
                    for d in drafts(100, start=1000 * (n + 1)):
                        mine.put(d)
                    ok = mine.flush(60) and ok  # generous: the suite may load both cores
                    delivery.shutdown(5)
                finally:
                    os._exit(0 if ok else 1)
            children.append(pid)
        codes = [os.waitpid(pid, 0)[1] for pid in children]
        assert parent.flush(60)
        delivery.shutdown(5)
    return codes


FORKED_PATHS = list(range(100)) + list(range(1000, 1100)) + list(range(2000, 2100))


@pytest.mark.real_delivery
def test_forked_workers_deliver_each_event_once(fast, tmp_path):
    receiver = TcpReceiver().start()
    codes = parent_and_two_forked_children_deliver({
        "SINK": "logstash-tcp", "LOGSTASH_HOSTS": [f"tcp://127.0.0.1:{receiver.port}"],
        "SPOOL_DIR": str(tmp_path)})
    receiver.received.wait_for(300, timeout=60)
    receiver.stop()
    assert codes == [0, 0]
    ids = receiver.received.ids()
    assert len(ids) == 300 and len(set(ids)) == 300
    paths = sorted(int(d["url"]["path"].rsplit("/", 1)[1]) for d in receiver.received.docs)
    assert paths == FORKED_PATHS


def test_shutdown_with_the_receiver_down_is_quick_and_keeps_the_spool(tmp_path):
    counters.reset()
    with override_settings(EVENTTRAIL={**FAST, "RETRY_BACKOFF": [30]}):
        handoff = Handoff(sink=LogstashTcpSink([f"tcp://127.0.0.1:{free_port()}"]),
                          spool=SqliteSpool(tmp_path, 1_000_000, 3600))
        run(handoff, drafts(500))
        assert not handoff.flush(0.5)
        left = handoff.stop(timeout=5)
    assert left == 500
    assert assert_balanced(handoff)["in_spool"] == 500
    assert not handoff.thread.is_alive()
    (spool_file,) = tmp_path.glob("spool-*.sqlite")
    import sqlite3

    assert sqlite3.connect(spool_file).execute("select count(*) from events").fetchone()[0] == 500


def test_a_worker_stopped_before_its_first_flush_still_delivers(tmp_path):
    """A short script (a management command) puts one event and exits at once: the builder's
    last pass opens the sender, and stop() waits for that sender too."""
    receiver = TcpReceiver().start()
    try:
        with override_settings(EVENTTRAIL={**FAST, "FLUSH_INTERVAL": 30}):
            counters.reset()
            handoff = Handoff(sink=LogstashTcpSink([f"tcp://127.0.0.1:{receiver.port}"]),
                              spool=SqliteSpool(tmp_path, 1_000_000, 3600))
            run(handoff, drafts(3))
            assert handoff.stop(timeout=10) == 0
        assert receiver.received.wait_for(3, timeout=10)
    finally:
        receiver.stop()
    assert len(set(receiver.received.ids())) == 3
    assert not handoff.sender_thread.is_alive()
    assert counters.snapshot()["counters"]["delivered"] == 3


def test_counters_are_summed_over_processes(tmp_path):
    from eventtrail.stats import aggregate

    (tmp_path / "stats-1.json").write_text(json.dumps(
        {"pid": 1, "counters": {"delivered": 5, "dropped.queue_full": 2}, "last_error": "old",
         "last_error_at": 1.0, "updated_at": 1.0}))
    (tmp_path / "stats-2.json").write_text(json.dumps(
        {"pid": 2, "counters": {"delivered": 7, "enqueued": 9}, "last_error": "new",
         "last_error_at": 2.0, "updated_at": 2.0}))
    total = aggregate(tmp_path)
    assert total["delivered"] == 12 and total["enqueued"] == 9
    assert total["dropped"]["queue_full"] == 2
    assert total["last_error"] == "new"
    assert {p["pid"] for p in total["processes"]} == {1, 2}


def test_stats_command_and_staff_endpoint_sum_all_processes(client, django_user_model, tmp_path):
    from django.core.management import call_command

    for pid, delivered in ((101, 3), (102, 4)):
        (tmp_path / f"stats-{pid}.json").write_text(json.dumps(
            {"pid": pid, "counters": {"delivered": delivered, "dropped.sink_down": 1,
                                      "collect.accepted": pid - 100, "collect.invalid.wrong_type": 1},
             "last_error": None, "last_error_at": None, "updated_at": 1.0}))
    with override_settings(EVENTTRAIL={"SPOOL_DIR": str(tmp_path)}):
        from io import StringIO

        out = StringIO()
        call_command("eventtrail_stats", "--json", stdout=out)
        assert json.loads(out.getvalue())["delivered"] == 7
        text = StringIO()
        call_command("eventtrail_stats", stdout=text)
        assert re.search(r"collect\.accepted +3\n", text.getvalue())
        assert re.search(r"collect\.invalid\.wrong_type +2\n", text.getvalue())
        assert client.get("/eventtrail/stats/").status_code == 302  # not staff: to login
        staff = django_user_model.objects.create_user("op", is_staff=True)
        client.force_login(staff)
        data = client.get("/eventtrail/stats/").json()
    assert data["delivered"] == 7 and data["dropped"]["sink_down"] == 2
    assert data["collect"] == {"accepted": 3, "invalid.wrong_type": 2}
    assert data["in_spool"] == 0


class FlakySink:
    """Raises a plain bug (not a delivery error) twice, then accepts."""

    name = "flaky"

    def __init__(self):
        self.failures, self.docs = 2, []

    def send(self, docs):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug in a sink")
        self.docs.extend(docs)

    def close(self):
        pass


def test_the_worker_outlives_a_raising_sink_and_an_unbuildable_draft(fast):
    sink = FlakySink()
    handoff = Handoff(sink=sink, spool=MemorySpool(10_000))
    try:
        items = drafts(50)
        items[10].type = None  # building this one fails
        run(handoff, items)
        assert handoff.flush(10)
    finally:
        stop(handoff)
    assert len(sink.docs) == 49
    snapshot = counters.snapshot()
    assert snapshot["counters"]["dropped.invalid"] == 1
    assert snapshot["counters"]["retried"] >= 49 * 2
    assert handoff.thread is not None


class BuggySink(FlakySink):
    """The same bug on every one of its first sends."""

    def __init__(self, failures):
        super().__init__()
        self.failures = failures


def test_a_repeated_error_is_logged_once_with_its_traceback_and_counted_each_time(fast, caplog):
    sink = BuggySink(failures=6)
    with override_settings(EVENTTRAIL={**FAST, "RETRY_BACKOFF": [0.01]}):
        handoff = Handoff(sink=sink, spool=MemorySpool(10_000))
        try:
            items = drafts(40)
            for i in (3, 17, 29):
                items[i].type = None  # building each of these fails the same way
            with caplog.at_level("DEBUG", logger="eventtrail.delivery"):
                run(handoff, items)
                assert handoff.flush(10)
        finally:
            stop(handoff)
    assert len(sink.docs) == 37
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and all(r.exc_info for r in errors)
    assert errors[1].exc_info[0] is RuntimeError
    assert "could not build an event" in errors[0].getMessage()
    assert "a bug in a sink" in errors[1].getMessage()
    repeats = [r for r in caplog.records if r.levelname == "DEBUG" and "seen before" in r.getMessage()]
    assert len(repeats) == 2 + 5
    snapshot = counters.snapshot()
    assert snapshot["counters"]["dropped.invalid"] == 3
    assert snapshot["counters"]["send_errors"] == 6
    assert "a bug in a sink" in snapshot["last_error"]


def test_the_tcp_sink_leaves_the_librarys_global_settings_alone():
    from logstash_async.constants import constants

    before = constants.SOCKET_CLOSE_WAIT_TIMEOUT
    LogstashTcpSink(["tcp://127.0.0.1:1"])
    assert before == constants.SOCKET_CLOSE_WAIT_TIMEOUT


class FailingSpool(MemorySpool):
    """A spool whose writes fail as a full disk makes SQLite fail them, a set number of times."""

    def __init__(self, append_failures=0, ack_failures=0):
        super().__init__(1_000_000)
        self.append_failures, self.ack_failures = append_failures, ack_failures

    def append(self, docs):
        if self.append_failures:
            self.append_failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return super().append(docs)

    def ack(self, upto):
        if self.ack_failures:
            self.ack_failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        super().ack(upto)


class CountingSink:
    name = "counting"

    def __init__(self):
        self.docs = []

    def send(self, docs):
        self.docs.extend(docs)

    def close(self):
        pass


def test_a_failed_spool_write_keeps_the_events_in_memory_and_tries_again(fast):
    sink, spool = CountingSink(), FailingSpool(append_failures=3)
    with override_settings(EVENTTRAIL={**FAST, "RETRY_BACKOFF": [0.01]}):
        handoff = Handoff(sink=sink, spool=spool)
        try:
            run(handoff, drafts(700))
            assert handoff.flush(10)
        finally:
            stop(handoff)
    ids = [json.loads(doc)["event"]["id"] for doc in sink.docs]
    assert len(ids) == len(set(ids)) == 700
    values = counters.snapshot()["counters"]
    assert values["spool_errors"] == 3 and values["delivered"] == 700
    assert not any(v for k, v in values.items() if k.startswith("dropped."))


def test_memory_stays_bounded_while_the_spool_cannot_be_written(fast):
    spool = FailingSpool(append_failures=10**9)
    with override_settings(EVENTTRAIL={**FAST, "QUEUE_SIZE": 100, "RETRY_BACKOFF": [0.01]}):
        handoff = Handoff(sink=CountingSink(), spool=spool)
        try:
            for batch in range(6):
                run(handoff, drafts(50, start=batch * 50))
                deadline = time.monotonic() + 10  # the worker drains the queue into memory
                while (handoff.queue or handoff.building) and time.monotonic() < deadline:
                    time.sleep(0.01)
            terms = assert_balanced(handoff)
            assert len(handoff.unspooled) == 100 and terms["in_memory"] == 100
            assert terms["dropped"] == {"spool_unwritable": 200}
            # The newest are kept, the oldest went.
            assert json.loads(handoff.unspooled[-1][1])["url"]["path"] == "/p/299"
        finally:
            handoff.stop(timeout=2)
    terms = assert_balanced(handoff)
    assert terms["dropped"]["shutdown"] > 0 and terms["delivered"] == 0


def test_a_failed_ack_is_retried_without_sending_again(fast):
    sink, spool = CountingSink(), FailingSpool(ack_failures=4)
    with override_settings(EVENTTRAIL={**FAST, "RETRY_BACKOFF": [0.01], "BATCH_SIZE": 100}):
        handoff = Handoff(sink=sink, spool=spool)
        try:
            run(handoff, drafts(500))
            assert handoff.flush(10)
        finally:
            stop(handoff)
    ids = [json.loads(doc)["event"]["id"] for doc in sink.docs]
    assert len(ids) == len(set(ids)) == 500  # the sink got each batch once
    values = counters.snapshot()["counters"]
    assert values["spool_errors"] == 4 and values["delivered"] == 500


def test_a_processor_that_drops_an_event_is_counted(fast):
    with override_settings(EVENTTRAIL={**FAST}):
        handoff = Handoff(sink=CountingSink(), spool=MemorySpool(1000),
                          prepare=lambda draft: None)
        try:
            run(handoff, drafts(7))
            assert handoff.flush(10)
        finally:
            stop(handoff)
    assert counters.snapshot()["counters"]["dropped.processor"] == 7
