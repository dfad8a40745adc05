"""Delivery benchmark: throughput with the spool on, python-logstash-async side by side, memory
while the receiver is down, where ``queue_full`` begins, and time to shut down.

    /work/main/.venv/bin/python bench/delivery.py [--quick]

All traffic goes to receivers on 127.0.0.1 that this script starts (in a child process, so
their JSON parsing does not compete for our GIL), or to ports nothing listens on.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402

SEED = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--seconds", type=float, help="measuring window per sink (i)")
    parser.add_argument("--their-events", type=int, help="events sent through their handler (ii)")
    parser.add_argument("--their-cap", type=float, help="seconds after which their run is cut (ii)")
    parser.add_argument("--memory-events", type=int, help="events put while the receiver is down")
    parser.add_argument("--sweep-seconds", type=float, help="seconds per offered rate (iii)")
    parser.add_argument("--shutdown-events", type=int, help="events queued before stop() (iv)")
    parser.add_argument("--sections", default="throughput,memory,sweep,shutdown",
                        help="comma-separated subset of: throughput (i and ii), memory, sweep, "
                             "shutdown")
    args = parser.parse_args(argv)
    args.sections = set(args.sections.split(","))
    quick = args.quick
    defaults = {
        "seconds": 3.0 if quick else 20.0,
        "their_events": 600 if quick else 10_000,
        "their_cap": 15.0 if quick else 90.0,
        "memory_events": 20_000 if quick else 200_000,
        "sweep_seconds": 1.0 if quick else 4.0,
        "shutdown_events": 2_000 if quick else 20_000,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_cpu(handoff: Any) -> float:
    """CPU seconds the hand-off's two threads have used, the builder and the sender (Linux:
    their pthread CPU clocks). Both are what delivery costs; counting the builder alone left out
    the sender's 25-35 %."""
    total = 0.0
    for thread in (handoff.thread, handoff.sender_thread):
        if thread is not None and thread.ident is not None and thread.is_alive():
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


class TimedSink:
    """Wraps a sink to add up the wall time the worker spends inside ``send``."""

    def __init__(self, sink: Any) -> None:
        self.sink, self.name, self.seconds = sink, sink.name, 0.0

    def send(self, docs: Any) -> None:
        t0 = time.perf_counter()
        try:
            self.sink.send(docs)
        finally:
            self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        self.sink.close()


def make_sink(kind: str, port: int) -> Any:
    from eventtrail.delivery.sinks import LogstashHttpSink, LogstashTcpSink

    if kind == "tcp":
        return LogstashTcpSink([f"tcp://127.0.0.1:{port}"])
    return LogstashHttpSink([f"http://127.0.0.1:{port}"])


def make_spool(var_dir: Path, name: str) -> Any:
    from eventtrail.conf import get_config
    from eventtrail.delivery.spool import SqliteSpool

    config = get_config()
    return SqliteSpool(var_dir / name, config["SPOOL_MAX_EVENTS"], config["SPOOL_MAX_AGE"])


def dropped(reason: str) -> int:
    from eventtrail.stats import counters

    return counters.values.get(f"dropped.{reason}", 0)


# --- (i) our sustained throughput --------------------------------------------------------------


def ours(kind: str, var_dir: Path, seconds: float) -> dict[str, Any]:
    """Keep the pipeline full (queued + spooled below a window) and count what arrives."""
    from eventtrail.delivery import Handoff
    from eventtrail.stats import counters

    receiver = _common.ReceiverProcess(kind)
    spool = make_spool(var_dir, f"spool-{kind}")
    sink = TimedSink(make_sink(kind, receiver.port))
    handoff = Handoff(sink=sink, spool=spool)
    counters.reset()
    stream = _common.drafts(SEED)
    window = handoff.maxsize * 2  # enough that the worker never waits, small enough to drain
    warmup = min(2.0, seconds / 2)
    put = 0
    put_ns = 0
    start = time.monotonic()
    first: tuple[int, float] | None = None
    cpu_first = (0.0, 0.0)
    send_first = 0.0
    while True:
        now = time.monotonic()
        if first is None and now - start >= warmup:
            first = (receiver.count(), time.monotonic())
            cpu_first = (worker_cpu(handoff), time.process_time())
            send_first = sink.seconds
        if now - start >= warmup + seconds:
            break
        queued = len(handoff.queue)
        if queued < handoff.maxsize - 200 and queued + spool.count() < window:
            batch = [next(stream) for _ in range(200)]
            t0 = time.perf_counter_ns()
            for draft in batch:
                handoff.put(draft)
            put_ns += time.perf_counter_ns() - t0
            put += len(batch)
        else:
            time.sleep(0.0005)
    last = (receiver.count(), time.monotonic())
    cpu_last = (worker_cpu(handoff), time.process_time())
    assert first is not None
    got = last[0] - first[0]
    send_us = (sink.seconds - send_first) / max(got, 1) * 1e6
    rate = got / (last[1] - first[1])
    worker_us = (cpu_last[0] - cpu_first[0]) / max(got, 1) * 1e6
    process_us = (cpu_last[1] - cpu_first[1]) / max(got, 1) * 1e6
    # Everything put must arrive, each event once: what counts is what the receiver got.
    expected = put - dropped("queue_full")
    deadline = time.monotonic() + 120
    while receiver.count() < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    distinct, docs, bad = receiver.counts()
    handoff.stop()
    receiver.stop()
    return {
        "sink": f"logstash-{kind}",
        "rate": rate,
        "put": put,
        "distinct": distinct,
        "docs": docs,
        "bad": bad,
        "drops": dropped("queue_full"),
        "put_us": put_ns / put / 1000,
        "worker_us": worker_us,
        "send_us": send_us,
        "process_us": process_us,
        # Each event arrived, once: documents received == distinct ids == events put (less any
        # counted drop). Comparing distinct ids alone would let duplicates pass.
        "complete": docs == distinct == expected and bad == 0,
    }


# --- (ii) python-logstash-async's own handler with its SQLite store ----------------------------


# Their settings, fairly tuned: batches of 500 as ours, no wait for the socket buffer to drain
# (as our TCP transport), and their database on a RAM disk. Their SQLite store commits with
# an fsync each time (a rollback journal, synchronous=FULL, a connection per event); ours is WAL
# with synchronous=NORMAL, which survives a process crash without an fsync per commit. A RAM disk
# takes their fsync away; it survives a process crash too (an OS crash loses it, where ours keeps
# all but the last transactions).
TUNED = {"QUEUED_EVENTS_BATCH_SIZE": 500, "QUEUED_EVENTS_FLUSH_COUNT": 500,
         "SOCKET_CLOSE_WAIT_TIMEOUT": 0.0}
RAM_DISK = Path("/dev/shm")


def theirs(label: str, settings: dict[str, Any], receiver: Any, db_dir: Path, events: int,
           cap: float) -> dict[str, Any]:
    """Log ``events`` records at once through AsynchronousLogstashHandler(database_path=...),
    with their ``constants`` set to ``settings`` (the rest at the library's defaults), then time
    until the receiver has them all (or ``cap`` seconds pass)."""
    import sqlite3

    from eventtrail.build import prepare
    from logstash_async.constants import Constants, constants
    from logstash_async.formatter import LogstashFormatter
    from logstash_async.handler import AsynchronousLogstashHandler

    # Process-wide in their library: the class defaults, then this run's settings.
    for name in ("SOCKET_CLOSE_WAIT_TIMEOUT", *TUNED):
        setattr(constants, name, settings.get(name, getattr(Constants, name)))
    records = []
    stream = _common.drafts(SEED + 1)
    for _ in range(events):
        prepared = prepare(next(stream))
        assert prepared is not None
        doc = json.loads(prepared[1])
        message = doc.pop("message")
        doc.pop("@timestamp")  # theirs stamps its own
        records.append((message, doc))
    db_path = db_dir / f"eventtrail-bench-theirs-{os.getpid()}-{label.replace(' ', '-')}.sqlite"
    handler = AsynchronousLogstashHandler("127.0.0.1", receiver.port, database_path=str(db_path))
    handler.setFormatter(LogstashFormatter())
    log = logging.getLogger(f"bench.theirs.{label}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    base = receiver.count()
    gc.collect()
    start = time.monotonic()
    caller_ns = 0
    for message, extra in records:
        t0 = time.perf_counter_ns()
        log.info(message, extra=extra)
        caller_ns += time.perf_counter_ns() - t0
    got, done_at = 0, time.monotonic()
    while time.monotonic() - start < cap:
        now_got = receiver.count() - base
        if now_got != got:
            got, done_at = now_got, time.monotonic()
        if got >= events:
            break
        time.sleep(0.1)
    capped = got < events
    if capped:
        # Abandon the rest: otherwise close() would insert and send all of it first.
        worker = AsynchronousLogstashHandler._worker_thread
        if worker is not None:
            with worker._queue.mutex:
                worker._queue.queue.clear()
        db = sqlite3.connect(db_path, timeout=30)
        try:
            with db:
                db.execute("DELETE FROM event")
        finally:
            db.close()
    log.removeHandler(handler)
    handler.close()
    for suffix in ("", "-journal"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    elapsed = (done_at - start) if got else (time.monotonic() - start)
    return {
        "label": label,
        "rate": got / elapsed if elapsed > 0 else 0.0,
        "got": got,
        "events": events,
        "elapsed": elapsed,
        "capped": capped,
        "caller_us": caller_ns / events / 1000,
    }


def their_doc_size() -> int:
    """Bytes of one of their documents for the same event (formatted, as sent)."""
    from eventtrail.build import prepare
    from logstash_async.formatter import LogstashFormatter

    prepared = prepare(next(_common.drafts(SEED + 1)))
    assert prepared is not None
    doc = json.loads(prepared[1])
    message = doc.pop("message")
    doc.pop("@timestamp")
    record = logging.getLogger("bench.size").makeRecord(
        "bench.size", logging.INFO, __file__, 1, message, (), None, extra=doc
    )
    return len(LogstashFormatter().format(record).encode()) + 1


# --- (iii) memory with the receiver down, and where queue_full begins ------------------------------


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def on_disk_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.glob("spool-*.sqlite*")) / 2**20


def memory(var_dir: Path, events: int) -> list[list[Any]]:
    from eventtrail.delivery import Handoff
    from eventtrail.stats import counters

    counters.reset()
    spool = make_spool(var_dir, "spool-memory")
    handoff = Handoff(sink=make_sink("tcp", free_port()), spool=spool)  # refused: nothing listens
    stream = _common.drafts(SEED + 2)
    marks = {round(events * k / 4) for k in range(1, 5)}
    gc.collect()
    rows: list[list[Any]] = [[0, rss_mb(), on_disk_mb(spool.dir), 0, 0, 0]]
    pace = handoff.maxsize // 2  # paced: the worker keeps up, so nothing is dropped
    start = time.monotonic()
    for i in range(1, events + 1):
        if i % 100 == 0:
            while len(handoff.queue) >= pace:
                time.sleep(0.001)
        handoff.put(next(stream))
        if i in marks:
            rows.append([i, rss_mb(), on_disk_mb(spool.dir), len(handoff.queue), spool.count(),
                         dropped("queue_full")])
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 120
    while (handoff.queue or spool.count() < events) and time.monotonic() < deadline:
        time.sleep(0.05)
    gc.collect()
    rows.append([f"{events:,} + worker caught up", rss_mb(), on_disk_mb(spool.dir),
                 len(handoff.queue), spool.count(), dropped("queue_full")])
    handoff.stop()
    rows.append([f"({elapsed:.1f} s to put; {events / elapsed:,.0f} puts/s paced)", "", "", "", "",
                 ""])
    return rows


def offered(var_dir: Path, kind: str, rate: float | None, seconds: float,
            receiver: Any | None) -> list[Any]:
    """Put at ``rate`` events/s (None: as fast as possible) for ``seconds``; count queue_full."""
    from eventtrail.delivery import Handoff
    from eventtrail.stats import counters

    counters.reset()
    port = receiver.port if receiver is not None else free_port()
    spool = make_spool(var_dir, f"spool-sweep-{kind}-{rate or 'max'}")
    handoff = Handoff(sink=make_sink("tcp", port), spool=spool)
    stream = _common.drafts(SEED + 3)
    chunk = [next(stream) for _ in range(100)]
    put = 0
    first_drop: tuple[int, float] | None = None
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        if rate is not None and put >= rate * elapsed:
            time.sleep(0.0002)
            continue
        for draft in chunk:
            handoff.put(draft)
        put += len(chunk)
        chunk = [next(stream) for _ in range(100)]
        if first_drop is None and dropped("queue_full"):
            first_drop = (put, time.monotonic() - start)
    elapsed = time.monotonic() - start
    drops = dropped("queue_full")
    # With the receiver up, stopping sends what was spooled; let it, so no worker is left
    # running into the next measurement.
    handoff.stop(timeout=300)
    return [
        "max" if rate is None else f"{rate:,.0f}",
        put / elapsed,
        drops,
        f"{100 * drops / put:.1f} %",
        "-" if first_drop is None else f"after {first_drop[0]:,} puts ({first_drop[1]:.2f} s)",
    ]


# --- (iv) shutdown --------------------------------------------------------------------------


def shutdown(var_dir: Path, kind: str, mode: str, events: int) -> list[Any]:
    from eventtrail.conf import get_config
    from eventtrail.delivery import Handoff
    from eventtrail.stats import counters

    from tests.support.receivers import Blackhole

    counters.reset()
    hole = Blackhole() if mode == "blackhole" else None
    port = hole.port if hole is not None else free_port()
    spool = make_spool(var_dir, f"spool-stop-{kind}-{mode}")
    handoff = Handoff(sink=make_sink(kind, port), spool=spool)
    stream = _common.drafts(SEED + 4)
    for _ in range(events):
        while len(handoff.queue) >= handoff.maxsize - 1:
            time.sleep(0.001)
        handoff.put(next(stream))
    time.sleep(1.0)  # the worker is now retrying (refused) or stuck in a send (blackhole)
    start = time.monotonic()
    left = handoff.stop()
    took = time.monotonic() - start
    alive = handoff.thread is not None and handoff.thread.is_alive()
    delivered = counters.values.get("delivered", 0)
    if hole is not None:
        hole.close()
    return [f"logstash-{kind}", mode, get_config()["SHUTDOWN_TIMEOUT"], f"{took:.2f}", left,
            delivered, dropped("queue_full"), "yes" if alive else "no"]


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    var_dir = _common.setup("delivery")
    try:
        run(args, var_dir)
    finally:
        _common.cleanup(var_dir)


def run(args: argparse.Namespace, var_dir: Path) -> None:
    from eventtrail.conf import get_config

    config = get_config()
    size = _common.doc_size()
    print(f"# Delivery benchmark ({'quick' if args.quick else 'full'} run)")
    print(f"{_common.machine()}")
    print(f"Our events: page views from eventtrail.capture.draft_for, {size:.0f} B on average as "
          f"sent. QUEUE_SIZE {config['QUEUE_SIZE']:,}, BATCH_SIZE {config['BATCH_SIZE']}, "
          f"SQLite spool in a temp dir.")

    if "throughput" in args.sections:
        throughput(args, var_dir)
    if "memory" in args.sections:
        print(_common.table(
            f"(iii) Memory while the receiver is down (TCP port refused), {args.memory_events:,} "
            "events, paced (queue kept under QUEUE_SIZE/2)",
            ["put() calls", "RSS MB", "spool on disk MB", "queued", "in spool", "queue_full"],
            memory(var_dir, args.memory_events),
        ))
    if "sweep" in args.sections:
        sweep(args, var_dir)
    if "shutdown" in args.sections:
        stops(args, var_dir)


def throughput(args: argparse.Namespace, var_dir: Path) -> None:
    # (i) and (ii), same run, same TCP receiver process for both libraries.
    tcp = ours("tcp", var_dir, args.seconds)
    http = ours("http", var_dir, args.seconds)
    receiver = _common.ReceiverProcess("tcp")
    their_size = their_doc_size()
    ram = RAM_DISK if RAM_DISK.is_dir() else var_dir
    mine = [theirs("defaults", {}, receiver, var_dir, args.their_events, args.their_cap),
            theirs("close-wait 0", {"SOCKET_CLOSE_WAIT_TIMEOUT": 0.0}, receiver, var_dir,
                   args.their_events, args.their_cap),
            theirs("tuned", TUNED, receiver, ram, args.their_events, args.their_cap)]
    receiver.stop()

    print(_common.table(
        "(i) Sustained throughput with the SQLite spool on (events the receiver got)",
        ["sink", "events/s", "worker CPU µs/event", "in send() µs/event", "process CPU µs/event",
         "events put", "documents received", "distinct ids", "bad docs", "queue_full", "put() µs",
         "all arrived once"],
        [[r["sink"], r["rate"], f"{r['worker_us']:.1f}", f"{r['send_us']:.1f}",
          f"{r['process_us']:.1f}", r["put"], r["docs"],
          r["distinct"], r["bad"], r["drops"], f"{r['put_us']:.2f}",
          "yes" if r["complete"] else "NO"] for r in (tcp, http)],
    ))
    print("\nWorker CPU µs/event is the CPU clocks of both delivery threads (builder and sender) "
          "over the window divided by the events received: 1,000,000 / it is what one free core "
          "could sustain, whatever else the machine runs. In send() is the wall time the worker spends sending, per event: "
          "for HTTP it includes waiting for the receiver's 200 while it parses the batch. "
          "Process CPU adds the main thread making drafts and put().")
    print(f"\nEvents/s is measured over {args.seconds:.0f} s after a warm-up, while the main thread "
          "keeps queued + spooled events below 2 x QUEUE_SIZE (so nothing is dropped and the "
          "spool cannot grow without bound).")
    print("Per event, ours: request thread: draft_for + put() (one deque append). Worker: "
          "build() + processors + unflatten + orjson.dumps, SQLite spool INSERT (one commit per "
          "up to 2,000), SELECT of 500, send (TCP: 100 per sendall; HTTP: 500 per POST), "
          "DELETE on ack.")
    print(f"Per event, theirs: caller thread: logger.info(msg, extra=<the same document>) -> "
          f"LogRecord -> LogstashFormatter (extras wrapped under 'extra'; {their_size} B as sent). "
          "Worker: per event a new SQLite connection, 3 CREATE IF NOT EXISTS, INSERT, COMMIT; "
          "per 50 events a SELECT + UPDATE, a new TCP connection, sendall, close (waiting up to "
          "SOCKET_CLOSE_WAIT_TIMEOUT for the send buffer to drain, polled every 50 ms), DELETE.")
    print(_common.table(
        "(ii) python-logstash-async 4.1.0 AsynchronousLogstashHandler, SQLite store, same TCP "
        "receiver",
        ["settings", "events/s", "events", "received", "seconds", "caller µs/event", "cut at cap"],
        [[m["label"], m["rate"], m["events"], m["got"], f"{m['elapsed']:.1f}",
          f"{m['caller_us']:.1f}", "yes" if m["capped"] else "no"] for m in mine],
    ))
    print(f"\nTheirs: {args.their_events:,} records logged at once, timed from the first log call "
          "until the receiver had them all (their worker only sends once its queue is empty, "
          "so a continuous feed faster than it inserts would deliver nothing). Tuned: "
          + ", ".join(f"{k} = {v:g}" for k, v in TUNED.items())
          + f", database in {ram} (a RAM disk: no fsync per commit, as our WAL with "
          "synchronous=NORMAL has none; it survives a process crash, an OS crash loses it).")
    print(_common.table(
        "Ratio, same run: ours against theirs at its defaults and fairly tuned (the fair figure)",
        ["ours", "events/s", "x theirs (defaults)", "x theirs (tuned)", ">= 20,000/s"],
        [[r["sink"], r["rate"], f"{r['rate'] / max(mine[0]['rate'], 1e-9):.1f}x",
          f"{r['rate'] / max(mine[2]['rate'], 1e-9):.1f}x", "yes" if r["rate"] >= 20_000 else "no"]
         for r in (tcp, http)],
    ))



def sweep(args: argparse.Namespace, var_dir: Path) -> None:
    from eventtrail.conf import get_config

    config = get_config()
    rates: list[float | None] = [5_000, 10_000, 20_000, 30_000, 40_000, 80_000, None]
    if args.quick:
        rates = [10_000, 40_000, None]
    receiver = _common.ReceiverProcess("tcp")
    rows = [["down", *offered(var_dir, "down", r, args.sweep_seconds, None)] for r in rates]
    rows += [["up (tcp)", *offered(var_dir, "up", r, args.sweep_seconds, receiver)] for r in rates]
    receiver.stop()
    print(_common.table(
        f"Where queue_full begins: put() at an offered rate for {args.sweep_seconds:.0f} s each, "
        f"not paced (QUEUE_SIZE {config['QUEUE_SIZE']:,})",
        ["receiver", "offered/s", "achieved puts/s", "queue_full", "dropped", "first drop"],
        rows,
    ))



def stops(args: argparse.Namespace, var_dir: Path) -> None:
    stops = [shutdown(var_dir, kind, mode, args.shutdown_events)
             for kind in ("tcp", "http") for mode in ("refused", "blackhole")]
    print(_common.table(
        f"(iv) Handoff.stop() after {args.shutdown_events:,} events were put, receiver down "
        "(target <= 5 s)",
        ["sink", "receiver", "SHUTDOWN_TIMEOUT", "stop() s", "left in spool", "counted delivered",
         "queue_full", "worker alive after stop()"],
        stops,
    ))
    print("\nBlackhole: a socket that accepts connections and never reads or answers. What is "
          "left stays in the SQLite spool for the next process to adopt. 'Counted delivered' "
          "against a blackhole is TCP's weakness: the kernel accepted those bytes.")


if __name__ == "__main__":
    main()
