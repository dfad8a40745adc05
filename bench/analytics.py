"""Latency of every analytic at N events on each store: database (SQLite, PostgreSQL), engine.

    python bench/analytics.py                      # 1,000,000 events, every store found here
    python bench/analytics.py --quick              # 20,000 events, a few repeats
    python bench/analytics.py --stores sqlite,engine --events 200000

Events come from the demo's activity generator (seeded site, 30 days) and are written in bulk:
enriched once, then bulk-inserted as rows (database stores) or sent with the bulk API (engine).
Each store runs in a child process of its own so its settings (database URL) are its own.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STORES = ("sqlite", "postgres", "engine")
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def _django(var_dir: Path, events_url: str = "") -> None:
    os.environ["EVENTTRAIL_VAR_DIR"] = str(var_dir)
    os.environ["DATABASE_URL"] = ""
    os.environ["EVENTTRAIL_DATABASE_URL"] = events_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    sys.path[:0] = [str(ROOT / "app"), str(ROOT)]
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("migrate", database="events", verbosity=0)


def _seed_and_generate(events: int, out: Path) -> dict[str, Any]:
    """The seeded site and ``events`` enriched documents, one JSON per line."""
    import eventtrail
    from community.activity import Generator, default_until, load_site
    from community.seed import seed
    from eventtrail import schema
    from eventtrail.build import prepare
    from eventtrail.enrichment import enrich

    with eventtrail.suppressed():
        seed()
    until = default_until()
    generator = Generator(load_site(random.Random(1)), days=30, events=events, seed=1,
                          until=until)
    began = time.monotonic()
    with out.open("w") as fh:
        for draft in generator.drafts():
            prepared = prepare(draft)
            if prepared is None:
                continue
            flat = enrich(schema.flatten(json.loads(prepared[1])))
            fh.write(json.dumps(schema.unflatten(flat)) + "\n")
    return {"until": until.isoformat(), "generate_seconds": round(time.monotonic() - began, 1)}


def _documents(path: Path) -> Any:
    with path.open() as fh:
        for line in fh:
            yield json.loads(line)


def _load_database(path: Path) -> float:
    from django.db import connections
    from eventtrail import schema
    from eventtrail.models import StoredEvent

    began = time.monotonic()
    batch: list[StoredEvent] = []
    for doc in _documents(path):
        batch.append(StoredEvent.from_flat(schema.flatten(doc), doc))
        if len(batch) >= 5000:
            StoredEvent.objects.using("events").bulk_create(batch, batch_size=5000)
            batch = []
    if batch:
        StoredEvent.objects.using("events").bulk_create(batch, batch_size=5000)
    connection = connections["events"]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return time.monotonic() - began


def _load_engine(path: Path, url: str, stream: str) -> float:
    from eventtrail import schema

    from elasticsearch import helpers
    from tests.support import es_adapter

    client = es_adapter.client(url)
    template = es_adapter.opensearch_template(
        schema.index_template(stream, ilm_policy=None, priority=900))
    template["index_patterns"] = [stream]
    client.indices.put_index_template(name="bench-analytics", **template)
    began = time.monotonic()
    actions = ({"_op_type": "create", "_index": stream, "_id": d["event"]["id"], "_source": d}
               for d in _documents(path))
    helpers.bulk(client, actions, chunk_size=5000, request_timeout=120)
    client.indices.refresh(index=stream)
    client.indices.forcemerge(index=stream, max_num_segments=1, request_timeout=600)
    return time.monotonic() - began


def _cases(until: str) -> list[tuple[str, Callable[[Any], Any]]]:
    """(name, store -> result): every analytic, with the site's busiest subjects."""
    from eventtrail.analytics import compute
    from eventtrail.analytics.params import parse

    def p(**values: str) -> Any:
        allowed = set(values) | {"interval", "size", "days"}
        return parse({"to": until, **values}, allowed)

    start = "now-30d/d"
    picks: dict[str, str] = {}

    def pick(store: Any) -> dict[str, str]:
        if not picks:
            base = p()
            community = store.tally(compute.where(base), compute.COMMUNITY, size=1)[0].key
            user = store.tally(compute.where(base, actions=[compute.CREATE]), compute.USER,
                               size=1)[0].key
            article = store.tally(compute.where(base, actions=[compute.VIEW]), compute.TARGET,
                                  size=1)[0].key
            picks.update(community=community, user=user, article=article)
        return picks

    return [
        ("trending", lambda s: compute.trending(s, p(), pick(s)["community"])),
        ("most viewed (all time)",
         lambda s: compute.most_viewed(s, p(), community=pick(s)["community"])),
        ("most viewed (30 days)",
         lambda s: compute.most_viewed(s, p(**{"from": start}), community=pick(s)["community"])),
        ("user's most viewed", lambda s: compute.most_viewed(s, p(), user=pick(s)["user"])),
        ("user's articles by state", lambda s: compute.user_articles(s, p(), pick(s)["user"])),
        ("active users (30 days, daily)",
         lambda s: compute.active_users(s, p(**{"from": start}), None)),
        ("events over time by action",
         lambda s: compute.events_over_time(s, p(**{"from": start}))),
        ("top members", lambda s: compute.top_members(s, p(**{"from": start}),
                                                      pick(s)["community"])),
        ("edits and state changes",
         lambda s: compute.content_changes(s, p(**{"from": start}), None)),
        ("new vs returning (30 days)",
         lambda s: compute.new_returning(s, p(**{"from": start}), None)),
        ("readers also read", lambda s: compute.also_read(s, p(days="30"), pick(s)["article"],
                                                          pick(s)["user"])),
        ("communities you may like",
         lambda s: compute.communities_for_you(s, p(days="30"), pick(s)["user"])),
        ("freshness (ETag)", lambda s: compute.freshness(s, p())),
        ("most viewed right after a new event", lambda s: _after_new_event(s, until, pick(s))),
    ]


def _after_new_event(store: Any, until: str, picks: dict[str, str]) -> Any:
    """A live page's worst poll: one event just arrived for the busiest day, so the database
    store rebuilds that day's rollups before answering; the engine just refreshes."""
    from datetime import datetime, timedelta

    from eventtrail.analytics import compute
    from eventtrail.analytics.params import parse
    from eventtrail.build import prepare
    from eventtrail.capture import draft_for

    at = datetime.fromisoformat(until) - timedelta(hours=1)
    draft = draft_for("article.view", {
        "eventtrail.community.slug": picks["community"], "eventtrail.target.type": "article",
        "eventtrail.target.id": picks["article"], "user.id": picks["user"]},
        at_ns=int(at.timestamp() * 1e9))
    prepared = prepare(draft)
    assert prepared is not None
    if store.name == "database":
        from eventtrail.delivery.sinks import DatabaseSink

        DatabaseSink("events").send([prepared[1]])
    else:
        from eventtrail.conf import get_config

        store.client.index(index=get_config()["DATA_STREAM"], document=json.loads(prepared[1]),
                           op_type="create", refresh=True)
    return compute.most_viewed(store, parse({"to": until}, {"to"}), community=picks["community"])


def _measure(store: Any, until: str, repeat: int) -> dict[str, dict[str, float]]:
    results = {}
    for name, run in _cases(until):
        run(store)  # warm caches, as a page that polls every few seconds has them
        samples = []
        for _ in range(repeat):
            began = time.perf_counter()
            run(store)
            samples.append((time.perf_counter() - began) * 1000)
        samples.sort()
        results[name] = {"p50": round(statistics.median(samples), 1),
                         "p95": round(samples[min(len(samples) - 1,
                                                  int(len(samples) * 0.95))], 1)}
    return results


# --- one store per child process -----------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    events_url = args.events_url or ""
    _django(work / args.store, events_url)
    docs = work / "events.jsonl"
    meta_path = work / "meta.json"
    if not docs.exists():  # the first store's child generates; the others reuse the file
        meta = _seed_and_generate(args.events, docs)
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    from django.conf import settings
    from eventtrail.stores.database import DatabaseStore

    report: dict[str, Any] = {"store": args.store, "generate_seconds": meta["generate_seconds"]}
    if args.store == "engine":
        from tests.support.engine import Engine
        from tests.support.es_adapter import OpenSearchCompatNode

        node = Engine(heap=args.heap).start()
        try:
            stream = "logs-eventtrail-bench"
            report["load_seconds"] = round(_load_engine(docs, node.url, stream), 1)
            settings.EVENTTRAIL = {**settings.EVENTTRAIL, "STORE": "elasticsearch",
                                   "ELASTICSEARCH_HOSTS": [node.url], "DATA_STREAM": stream,
                                   "ELASTICSEARCH_OPTIONS": {"node_class": OpenSearchCompatNode,
                                                             "request_timeout": 60}}
            from eventtrail.conf import get_config
            from eventtrail.stores import get_store, reset

            get_config.cache_clear()
            reset()
            report["latency_ms"] = _measure(get_store(), meta["until"], args.repeat)
        finally:
            node.stop()
    else:
        from eventtrail.models import StoredEvent

        loaded = work / f"{args.store}.loaded"
        if args.store == "sqlite" and loaded.exists() and StoredEvent.objects.using("events").exists():
            report["load_seconds"] = float(loaded.read_text())  # a kept --work directory
        else:
            report["load_seconds"] = round(_load_database(docs), 1)
            loaded.write_text(str(report["load_seconds"]))
        from eventtrail.stores.database import ensure_rollups, reset_rollups

        reset_rollups("events")
        began = time.monotonic()
        ensure_rollups("events")
        report["rollup_seconds"] = round(time.monotonic() - began, 1)
        report["latency_ms"] = _measure(DatabaseStore("events"), meta["until"], args.repeat)
    print("RESULT " + json.dumps(report), flush=True)


class Postgres:
    """A throwaway PostgreSQL cluster on a free port, run as the postgres user."""

    def __init__(self, work: Path) -> None:
        self.dir = work / "pg"
        self.port = 0

    def start(self) -> str:
        import socket

        binary = PG_BIN[-1]
        self.dir.mkdir(parents=True)
        shutil.chown(self.dir, "postgres")
        run = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*run, str(binary / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
                        "-U", "postgres"], check=True, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                   "-c shared_buffers=512MB -c work_mem=64MB -c fsync=off "
                   "-c synchronous_commit=off -c max_parallel_workers_per_gather=2")
        subprocess.run([*run, str(binary / "pg_ctl"), "-D", str(self.dir / "data"), "-o", options,
                        "-l", str(self.dir / "log"), "-w", "start"], check=True,
                       capture_output=True)
        subprocess.run([*run, str(binary / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "events"], check=True, capture_output=True)
        return f"postgres://postgres@127.0.0.1:{self.port}/events"

    def stop(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN[-1] / "pg_ctl"), "-D",
                        str(self.dir / "data"), "-m", "fast", "stop"], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events, 3 repeats")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--heap", default="2g", help="engine heap")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help="keep generated events and the SQLite store here, and "
                        "reuse them next time (default: a temporary directory)")
    parser.add_argument("--events-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeat = 20_000, 3
    if args.child:
        args.store = args.child
        child(args)
        return 0
    stores = [s for s in args.stores.split(",") if s]
    for store in stores:
        if store not in STORES:
            parser.error(f"unknown store {store!r}; use {', '.join(STORES)}")
    if "postgres" in stores and (not PG_BIN or os.geteuid() != 0):
        print("PostgreSQL binaries (or root, to run them as postgres) missing: skipping it.")
        stores.remove("postgres")
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.work and (work / "meta.json").exists():
            kept = sum(1 for _ in (work / "events.jsonl").open())
            if kept != args.events:
                parser.error(f"{work} holds {kept} events, not {args.events}")
        work.chmod(0o755)  # the postgres user walks into its cluster directory
        for store in stores:
            command = [sys.executable, __file__, "--child", store, "--work", str(work),
                       "--events", str(args.events), "--repeat", str(args.repeat),
                       "--heap", args.heap]
            postgres = None
            if store == "postgres":
                postgres = Postgres(work)
                command += ["--events-url", postgres.start()]
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False)
            finally:
                if postgres:
                    postgres.stop()
            lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if done.returncode or not lines:
                sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
                return 1
            reports.append(json.loads(lines[-1][len("RESULT "):]))
    print(render(reports, args.events))
    if args.json:
        Path(args.json).write_text(json.dumps({"events": args.events, "stores": reports},
                                              indent=2))
    return 0


def render(reports: list[dict[str, Any]], events: int) -> str:
    names = list(reports[0]["latency_ms"]) if reports else []
    head = "| analytic | " + " | ".join(f"{r['store']} p50 / p95 (ms)" for r in reports) + " |"
    lines = [f"{events:,} events", "", head, "|---" * (len(reports) + 1) + "|"]
    for name in names:
        cells = [f"{r['latency_ms'][name]['p50']} / {r['latency_ms'][name]['p95']}"
                 for r in reports]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in reports:
        rollup = f", rollups built in {r['rollup_seconds']} s" if "rollup_seconds" in r else ""
        lines.append(f"{r['store']}: generated in {r['generate_seconds']} s, "
                     f"loaded in {r['load_seconds']} s{rollup}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
