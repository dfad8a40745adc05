"""Query API latency on every store: list, filtered list, deep cursor, group-by and histogram.

Run from the repository root with the project's venv:

    /work/main/.venv/bin/python bench/api.py                 # 100,000 and 1,000,000 events
    /work/main/.venv/bin/python bench/api.py --quick         # 5,000 events, a few requests each
    /work/main/.venv/bin/python bench/api.py --stores sqlite,postgresql --explain

Everything lives in a temporary directory: the site and event SQLite files (WAL), a throwaway
PostgreSQL cluster (tests/pg_fixture.py) and a local OpenSearch node (tests/engine.py). Events
come from the demo activity generator over a freshly seeded demo site, go through the same
build, processors and enrichment as the database sink, and are bulk-loaded into every store in
one stream, so each size is a prefix of the next. Requests go through Django's test client and
the real DRF views, logged in as a staff user.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
STORES = ("sqlite", "postgresql", "elasticsearch")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "elasticsearch": "Elasticsearch"}
PG_ALIAS = "bench_pg"
DATA_STREAM = "logs-eventtrail-bench"
DAYS = 30
BATCH = 5000
DEEP_PAGE = 50
OPERATIONS = (
    ("list", "list, default sort, first page"),
    ("filtered", "list, event.action=article.view & community"),
    ("deep", f"list, cursor page {DEEP_PAGE}"),
    ("group_action", "group_by=event.action"),
    ("group_community_action", "group_by=community,event.action"),
    ("histogram", f"interval=day over {DAYS} days"),
)


def setup_django(workdir: Path) -> None:
    """Point the demo settings at ``workdir`` and start Django."""
    for name in ("DATABASE_URL", "EVENTTRAIL_DATABASE_URL", "EVENTTRAIL_STORE", "EVENTTRAIL_SINK"):
        os.environ.pop(name, None)
    os.environ["EVENTTRAIL_VAR_DIR"] = str(workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # The benchmark sends thousands of requests a minute as one user.
    os.environ["API_THROTTLE_USER"] = "100000000/min"
    for path in (ROOT / "app", ROOT):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import django

    django.setup()
    from django.conf import settings

    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "API_THROTTLE_RATE": "100000000/min"}
    from eventtrail.conf import get_config

    get_config.cache_clear()
    # The client logs every request at INFO; thousands of lines would bury the figures.
    import logging

    logging.getLogger("elastic_transport").setLevel(logging.WARNING)


def quiet(fn: Callable[[], Any]) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


# --- stores ---------------------------------------------------------------------------------


class Loader:
    """Writes batches into one store and counts the time it spent doing so."""

    name = ""
    seconds = 0.0

    def write(self, rows: list[Any], docs: list[str]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Make everything written so far visible to queries."""

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever the store started."""


def _columns() -> tuple[list[Any], str]:
    from eventtrail.models import StoredEvent

    fields = list(StoredEvent._meta.concrete_fields)
    return fields, ", ".join(f.column for f in fields)


def _rollups_rebuilt(alias: str) -> None:
    """The loaders insert around the database sink, which keeps the rollups a plain histogram
    reads: forgotten, they are rebuilt from the events by the next query (not timed: each
    request is made once before its samples)."""
    from eventtrail.stores.database import reset_rollups

    reset_rollups(alias)


class SqliteLoader(Loader):
    """The events alias of the demo settings: a SQLite file in WAL mode, migrated."""

    name = "sqlite"
    alias = "events"

    def __init__(self) -> None:
        from django.db import connections

        self.connection = connections[self.alias]
        self.fields, columns = _columns()
        marks = ", ".join(["%s"] * len(self.fields))
        self.sql = f"INSERT INTO eventtrail_storedevent ({columns}) VALUES ({marks})"

    def write(self, rows: list[Any], docs: list[str]) -> None:
        from django.db import transaction

        began = time.perf_counter()
        values = [
            [f.get_db_prep_save(getattr(r, f.attname), self.connection) for f in self.fields]
            for r in rows
        ]
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.executemany(self.sql, values)
        self.seconds += time.perf_counter() - began

    def finish(self) -> None:
        _rollups_rebuilt(self.alias)

    def config(self) -> dict[str, Any]:
        return {"STORE": "database", "DATABASE_ALIAS": self.alias}


class PostgresLoader(Loader):
    """A throwaway cluster; the table made from the model (so with its indexes), filled by COPY."""

    name = "postgresql"

    def __init__(self) -> None:
        from django.db import connections
        from eventtrail.models import RollupState, StoredEvent
        from eventtrail.stores.database import GRAINS

        from tests.support import pg_fixture

        self.running = pg_fixture.cluster()
        server = next(self.running)
        base = dict(connections.settings["events"])
        base.update(server.django())
        connections.settings[PG_ALIAS] = base
        self.connection = connections[PG_ALIAS]
        with self.connection.schema_editor() as editor:
            # The events table, and the rollups a plain histogram reads (``_rollups_rebuilt``).
            for model in (StoredEvent, RollupState, *GRAINS):
                editor.create_model(model)
        self.fields, columns = _columns()
        self.sql = f"COPY eventtrail_storedevent ({columns}) FROM STDIN"

    def write(self, rows: list[Any], docs: list[str]) -> None:
        began = time.perf_counter()
        with self.connection.cursor() as cursor, cursor.cursor.copy(self.sql) as copy:
            for r in rows:
                copy.write_row(
                    [
                        f.get_db_prep_save(getattr(r, f.attname), self.connection)
                        for f in self.fields
                    ]
                )
        self.seconds += time.perf_counter() - began

    def finish(self) -> None:
        # Autovacuum vacuums and analyses a table soon after this many inserts; do it now, so
        # the planner has statistics and index-only scans see an up-to-date visibility map.
        began = time.perf_counter()
        with self.connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE eventtrail_storedevent")
        self.seconds += time.perf_counter() - began
        _rollups_rebuilt(PG_ALIAS)

    def config(self) -> dict[str, Any]:
        return {"STORE": "database", "DATABASE_ALIAS": PG_ALIAS}

    def close(self) -> None:
        self.connection.close()
        with contextlib.suppress(StopIteration):
            next(self.running)


class ElasticsearchLoader(Loader):
    """The local OpenSearch node: our index template, a data stream, bulk in a side thread."""

    name = "elasticsearch"

    def __init__(self, heap: str, request_cache: bool) -> None:
        from eventtrail import schema

        from tests.support import es_adapter
        from tests.support.engine import Engine

        self.engine = Engine(heap=heap).start()
        self.client = es_adapter.client(self.engine.url, request_timeout=300)
        template = es_adapter.opensearch_template(
            schema.index_template(DATA_STREAM, ilm_policy=None, priority=900)
        )
        template["index_patterns"] = [DATA_STREAM]
        self.client.indices.put_index_template(name="eventtrail-bench", **template)
        self.client.indices.create_data_stream(name=DATA_STREAM)
        # Refresh once per size instead of every second while loading. The shard request cache
        # would answer every repeat of an aggregation from memory after the warm-up; off, each
        # request is computed, as the database stores compute theirs.
        settings: dict[str, Any] = {"refresh_interval": "-1"}
        if not request_cache:
            settings["requests.cache.enable"] = False
        self.client.indices.put_settings(index=DATA_STREAM, settings={"index": settings})
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: list[Future[None]] = []
        self.lock = threading.Lock()

    def _bulk(self, body: str) -> None:
        began = time.perf_counter()
        result = self.client.bulk(operations=body)
        if result["errors"]:
            failed = next(i for i in result["items"] if i["create"].get("error"))
            raise RuntimeError(f"bulk indexing failed: {failed}")
        with self.lock:
            self.seconds += time.perf_counter() - began

    def write(self, rows: list[Any], docs: list[str]) -> None:
        lines = []
        for row, doc in zip(rows, docs, strict=True):
            lines.append(json.dumps({"create": {"_index": DATA_STREAM, "_id": row.id}}))
            lines.append(doc)
        # At most one batch waits behind the one being indexed, so memory stays flat.
        while len(self.pending) >= 2:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._bulk, "\n".join(lines) + "\n"))

    def finish(self) -> None:
        for future in self.pending:
            future.result()
        self.pending = []
        began = time.perf_counter()
        self.client.indices.refresh(index=DATA_STREAM)
        self.seconds += time.perf_counter() - began

    def config(self) -> dict[str, Any]:
        from tests.support.es_adapter import OpenSearchCompatNode

        return {
            "STORE": "elasticsearch",
            "ELASTICSEARCH_HOSTS": [self.engine.url],
            "DATA_STREAM": DATA_STREAM,
            # The store's 10 s default is for a live site; a million-event aggregation on a
            # 2-core box must finish rather than count as an outage.
            "ELASTICSEARCH_OPTIONS": {"node_class": OpenSearchCompatNode, "request_timeout": 120},
        }

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.engine.stop()


# --- events ---------------------------------------------------------------------------------


@dataclass
class Source:
    """The generator's events, handed out in batches as (model rows, enriched JSON documents)."""

    drafts: Iterator[dict[str, Any]]
    start: datetime
    until: datetime
    communities: list[str]
    made: int = 0
    seconds: float = 0.0

    def batches(self, upto: int) -> Iterator[tuple[list[Any], list[str]]]:
        from eventtrail import schema
        from eventtrail.build import build
        from eventtrail.enrichment import enrich
        from eventtrail.models import StoredEvent
        from eventtrail.processors import run

        while self.made < upto:
            began = time.perf_counter()
            rows, docs = [], []
            for draft in self.drafts:
                event = run(build(draft))
                if event is None:
                    continue
                # What DatabaseSink.send does, without the JSON round trip in between.
                flat = enrich({k: v for k, v in event.items() if not k.startswith("_")})
                document = schema.unflatten(flat)
                rows.append(StoredEvent.from_flat(flat, document))
                docs.append(json.dumps(document, separators=(",", ":"), ensure_ascii=False))
                self.made += 1
                if len(rows) >= BATCH or self.made >= upto:
                    break
            self.seconds += time.perf_counter() - began
            if not rows:
                raise RuntimeError(f"the generator stopped at {self.made} events")
            yield rows, docs


def make_source(total: int) -> Source:
    from community.activity import Generator, default_until, load_site
    from django.core.management import call_command

    for alias in ("default", "events"):
        call_command("migrate", database=alias, verbosity=0)
    quiet(lambda: call_command("seed_demo", verbosity=0))
    until = default_until()
    site = load_site(random.Random(1))
    generator = Generator(site, days=DAYS, events=total, seed=1, until=until)
    return Source(generator.drafts(), until - timedelta(days=DAYS), until, list(site.communities))


# --- requests -------------------------------------------------------------------------------


def use_store(loader: Loader) -> None:
    from django.conf import settings
    from django.core.signals import setting_changed
    from eventtrail import stores

    settings.EVENTTRAIL = {**settings.EVENTTRAIL, **loader.config()}
    # Announced as override_settings does: every cache of the configuration (the store built,
    # the STORE class resolved) is dropped by its receivers.
    setting_changed.send(sender=type(settings._wrapped), setting="EVENTTRAIL",
                         value=settings.EVENTTRAIL, enter=True)
    if stores.get_store().name != loader.config()["STORE"]:
        raise RuntimeError(f"the API still uses {stores.get_store().name}")


def fetch(client: Any, url: str) -> tuple[float, Any]:
    began = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.content[:300]!r}")
    return elapsed, response.json()


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def urls(client: Any, source: Source) -> dict[str, str]:
    """Each operation's URL for the store in use; the deep page is reached by following cursors."""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    span = {"from": source.start.strftime(fmt), "to": source.until.strftime(fmt)}
    out = {
        "list": "/api/events/",
        "filtered": "/api/events/?"
        + urlencode(
            {"event.action": "article.view", "eventtrail.community.slug": source.communities[0]}
        ),
        "group_action": "/api/events/aggregate/?group_by=event.action",
        "group_community_action": "/api/events/aggregate/?"
        + urlencode({"group_by": "eventtrail.community.slug,event.action"}),
        "histogram": "/api/events/aggregate/?" + urlencode({"interval": "day", **span}),
    }
    url = out["list"]
    for _ in range(DEEP_PAGE - 1):
        _, body = fetch(client, url)
        if not body["next"]:
            raise RuntimeError(f"fewer than {DEEP_PAGE} pages of events")
        url = local(body["next"])
    out["deep"] = url
    return out


def nearest_rank(sorted_ms: list[float], percent: float) -> float:
    return sorted_ms[max(0, math.ceil(percent / 100 * len(sorted_ms)) - 1)]


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return nearest_rank(sorted(self.samples), 50)

    @property
    def p95(self) -> float:
        return nearest_rank(sorted(self.samples), 95)


def time_url(client: Any, url: str, least: int, most: int, budget: float) -> tuple[Timing, Any]:
    """One warm-up, then at least ``least`` and at most ``most`` timed requests within budget."""
    _, body = fetch(client, url)
    timing = Timing()
    began = time.perf_counter()
    while len(timing.samples) < most:
        elapsed, body = fetch(client, url)
        timing.samples.append(elapsed * 1000)
        if len(timing.samples) >= least and time.perf_counter() - began > budget:
            break
    return timing, body


def explain(loader: Loader, client: Any, url: str) -> list[str]:
    """The plan of every statement one request runs against the events table."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    alias = PG_ALIAS if loader.name == "postgresql" else "events"
    connection = connections[alias]
    with CaptureQueriesContext(connection) as captured:
        fetch(client, url)
    plans = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if "eventtrail_storedevent" not in sql:
            continue
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            else:
                cursor.execute("EXPLAIN QUERY PLAN " + sql)
                plan = "\n".join(row[-1] for row in cursor.fetchall())
        plans.append(f"{sql[:400]}\n{plan}")
    return plans


# --- report ---------------------------------------------------------------------------------


def table(results: dict[tuple[str, int, str], Timing], sizes: list[int], stores: list[str]) -> str:
    head = ["operation", "events"] + [f"{LABELS[s]} p50 / p95 ms" for s in stores]
    base = stores[0]
    ratios = stores[1:]
    head += [f"{LABELS[s]} / {LABELS[base]} (p50)" for s in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for op, label in OPERATIONS:
        for size in sizes:
            cells = [label, f"{size:,}"]
            for s in stores:
                t = results.get((op, size, s))
                cells.append(f"{t.p50:.1f} / {t.p95:.1f}" if t else "n/a")
            for s in ratios:
                t, b = results.get((op, size, s)), results.get((op, size, base))
                cells.append(f"{t.p50 / b.p50:.3g}x" if t and b else "n/a")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def totals(body: Any) -> int:
    return sum(b["count"] for b in body["buckets"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/api.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events, a few requests each")
    parser.add_argument("--sizes", help="comma-separated event counts (default 100000,1000000)")
    parser.add_argument("--stores", default=",".join(STORES), help="subset of " + ",".join(STORES))
    parser.add_argument("--explain", action="store_true", help="print the SQL plans")
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--heap", default="1g", help="the search engine's JVM heap")
    parser.add_argument(
        "--request-cache", action="store_true", help="leave the engine's shard request cache on"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - set(STORES)
    if unknown or not stores:
        parser.error(f"--stores: unknown {sorted(unknown)}; choose from {', '.join(STORES)}")
    default_sizes = "5000" if args.quick else "100000,1000000"
    sizes = sorted(int(s) for s in (args.sizes or default_sizes).split(","))
    least, most, budget = (3, 5, 1.0) if args.quick else (5, 30, args.budget)

    workdir = Path(tempfile.mkdtemp(prefix="eventtrail-apibench-"))
    setup_django(workdir)
    from django.contrib.auth import get_user_model
    from django.test import Client

    began = time.perf_counter()
    source = make_source(sizes[-1])
    print(f"demo site seeded in {time.perf_counter() - began:.1f}s ({workdir})", flush=True)
    staff = get_user_model().objects.create_user("bench-staff", is_staff=True)
    client = Client()
    client.force_login(staff)

    loaders: list[Loader] = []
    results: dict[tuple[str, int, str], Timing] = {}
    try:
        for name in stores:
            began = time.perf_counter()
            if name == "sqlite":
                loaders.append(SqliteLoader())
            elif name == "postgresql":
                loaders.append(PostgresLoader())
            else:
                loaders.append(ElasticsearchLoader(args.heap, args.request_cache))
            print(f"{LABELS[name]} ready in {time.perf_counter() - began:.1f}s", flush=True)
        for size in sizes:
            began = time.perf_counter()
            for rows, docs in source.batches(size):
                for loader in loaders:
                    loader.write(rows, docs)
            for loader in loaders:
                loader.finish()
            wall = time.perf_counter() - began
            spent = ", ".join(f"{LABELS[ld.name]} {ld.seconds:.1f}s" for ld in loaders)
            print(
                f"\nloaded {size:,} events (this step {wall:.1f}s wall; cumulative: generate and "
                f"enrich {source.seconds:.1f}s, {spent}; Elasticsearch indexes in a side thread)",
                flush=True,
            )
            counts: dict[str, int] = {}
            for loader in loaders:
                use_store(loader)
                targets = urls(client, source)
                for op, label in OPERATIONS:
                    timing, body = time_url(client, targets[op], least, most, budget)
                    results[(op, size, loader.name)] = timing
                    if op == "histogram":
                        counts[loader.name] = totals(body)
                    print(
                        f"  {LABELS[loader.name]:<13} {label:<44} p50 {timing.p50:9.1f} ms  "
                        f"p95 {timing.p95:9.1f} ms  (n={len(timing.samples)})",
                        flush=True,
                    )
                    if args.explain and loader.name != "elasticsearch":
                        for plan in explain(loader, client, targets[op]):
                            print("    " + plan.replace("\n", "\n    "))
            if len(set(counts.values())) > 1:
                print(f"  WARNING: the stores disagree on the histogram's total: {counts}")
            else:
                print(f"  every store counts {next(iter(counts.values())):,} non-bot events")
    finally:
        for loader in loaders:
            loader.close()
        from django.db import connections

        connections.close_all()
        shutil.rmtree(workdir, ignore_errors=True)

    print("\n" + table(results, sizes, stores))
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "operation": op,
                        "events": size,
                        "store": store,
                        "samples_ms": t.samples,
                        "p50_ms": t.p50,
                        "p95_ms": t.p95,
                    }
                    for (op, size, store), t in results.items()
                ],
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
