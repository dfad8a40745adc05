"""Analytics as users meet them: the pages' data.json and every /api/analytics/ endpoint, at N
events, on each store: the database store (SQLite, PostgreSQL) and the engine.

    python bench/analytics.py                      # 1,000,000 events, every store found here
    python bench/analytics.py --quick              # 20,000 events, a few repeats
    python bench/analytics.py --stores sqlite,engine --events 200000

Events come from the demo's activity generator (seeded site, the 30 days up to the moment the
data is made, so "today so far" holds events as on a live site). The database stores receive
them as a site's do, through ``DatabaseSink`` in batches (enriched and inserted by the sink; no
``ANALYZE`` afterwards, as nothing runs one on a live site); the engine through the bulk API,
enriched as the pipeline does, twice: into one backing index (``engine``: a site whose events
all arrived within a week, the worst case), and into one per week (``engine-weekly``: the data
stream rolled over between weeks, as the shipped ILM policy does, so 30 days of events lie in
five backing indices and a new event touches only the newest). Each store runs in a child
process of its own.

Every request goes through the real URL, middleware and view (Django's test client, in
process, signed in), with the defaults a page or a documented example uses: ``to`` is "now",
the pages' period is their default, the API's ``from`` is its documented default. Each request
runs once to warm up, then up to ``--repeat`` times or until ``--budget`` seconds are spent on it
(at least 3 samples); p50 and p95 per request. "First request" is the first page request the
process serves after the events are in.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STORES = ("sqlite", "postgres", "engine", "engine-weekly")
WEEK = 7 * 86400
FIRST_WEEK = 30 * 86400 // WEEK  # the generated activity's 30 days: weeks 0 (newest) to 4
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
WARM_PASSES = 2  # passes over every request before any is timed (see _measure)
THROTTLE_OFF = "1000000/min"  # the bench's own requests must never meet the API throttle


def _django(var_dir: Path, events_url: str = "") -> None:
    os.environ["EVENTTRAIL_VAR_DIR"] = str(var_dir)
    os.environ["DATABASE_URL"] = ""
    os.environ["EVENTTRAIL_DATABASE_URL"] = events_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["API_THROTTLE_USER"] = THROTTLE_OFF
    sys.path[:0] = [str(ROOT / "app"), str(ROOT)]
    # Started as the server starts (gunicorn loads config.wsgi): Django set up, and what start-up
    # made frozen out of the garbage collector's full collections.
    import config.wsgi  # noqa: F401
    from django.conf import settings
    from django.core.management import call_command

    # The bench's own requests are not recorded: the only new events are those it adds on
    # purpose, so a poll with nothing new gets its 304, and no worker competes for the CPU.
    from django.test.utils import override_settings

    override_settings(EVENTTRAIL={**settings.EVENTTRAIL, "API_THROTTLE_RATE": THROTTLE_OFF,
                                  "ENABLED": False}).enable()  # announced: caches dropped
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)
    call_command("migrate", database="events", verbosity=0)


def _seed_and_generate(events: int, out: Path) -> dict[str, Any]:
    """The seeded site and ``events`` documents as the worker sends them, one JSON per line."""
    from datetime import UTC, datetime

    import eventtrail
    from community.activity import Generator, load_site
    from community.seed import seed
    from eventtrail.build import prepare

    with eventtrail.suppressed():
        seed()
    until = datetime.now(UTC)
    generator = Generator(load_site(random.Random(1)), days=30, events=events, seed=1,
                          until=until)
    began = time.monotonic()
    with out.open("w") as fh:
        for draft in generator.drafts():
            prepared = prepare(draft)
            if prepared is not None:
                fh.write(prepared[1] + "\n")
    return {"until": until.isoformat(), "generate_seconds": round(time.monotonic() - began, 1)}


def _seed_site() -> None:
    """Each store's child has a site database of its own: the same seeded site (users, articles,
    memberships) the events were generated from, for sign-in, access and titles."""
    import eventtrail
    from community.seed import seed
    from django.contrib.auth import get_user_model

    if not get_user_model()._default_manager.exists():
        with eventtrail.suppressed():
            seed()


def _lines(path: Path, size: int) -> Any:
    batch: list[str] = []
    with path.open() as fh:
        for line in fh:
            batch.append(line.rstrip("\n"))
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _load_database(path: Path) -> float:
    """Through the sink a site's worker uses, 500 documents a call (its BATCH_SIZE)."""
    from eventtrail.delivery.sinks import DatabaseSink

    sink = DatabaseSink("events")
    began = time.monotonic()
    for batch in _lines(path, 500):
        sink.send(batch)
    return time.monotonic() - began


def _weeks(path: Path, until: str) -> list[Path]:
    """The events split by the week they fall in, counted back from ``until``, oldest first:
    the backing indices a data stream under the shipped ILM policy (rollover at 7 days) holds
    after the 30 days of generated activity. The site's older history (articles written months
    before) was recorded when the stream began: in its first backing index."""
    from datetime import datetime

    end = datetime.fromisoformat(until).timestamp()
    files: dict[int, Any] = {}
    with path.open() as fh:
        for line in fh:
            moment = datetime.fromisoformat(json.loads(line)["@timestamp"].replace("Z", "+00:00"))
            week = min(int((end - moment.timestamp()) // WEEK), FIRST_WEEK)
            if week not in files:
                files[week] = path.with_name(f"week-{week}.jsonl").open("w")
            files[week].write(line)
    for fh in files.values():
        fh.close()
    return [path.with_name(f"week-{week}.jsonl") for week in sorted(files, reverse=True)]


def _load_engine(path: Path, url: str, stream: str, until: str | None = None) -> float:
    """Bulk, enriched as the pipeline does, then a force merge and a refresh. With ``until``:
    week by week, the data stream rolled over between weeks (``_weeks``).

    The refresh comes after the merge: the merged segment is only searched once a refresh opens
    it, and an index that nothing searched for 30 s is "search idle" (it skips the scheduled
    refreshes), so without it the first request would open it itself (and build its global
    ordinals) and time the loader's leftover as the site's first request. An engine that
    restarts opens (and warms) its segments while it recovers, before its shards answer."""
    from eventtrail import schema
    from eventtrail.enrichment import enrich

    from elasticsearch import helpers
    from tests.support import es_adapter

    client = es_adapter.client(url)
    template = es_adapter.opensearch_template(
        schema.index_template(stream, ilm_policy=None, priority=900))
    template["index_patterns"] = [stream]
    client.indices.put_index_template(name="bench-analytics", **template)

    def actions(source: Path) -> Any:
        for batch in _lines(source, 5000):
            for line in batch:
                doc = schema.unflatten(enrich(schema.flatten(json.loads(line))))
                yield {"_op_type": "create", "_index": stream, "_id": doc["event"]["id"],
                       "_source": doc}

    began = time.monotonic()
    if until is None:
        helpers.bulk(client.options(request_timeout=120), actions(path), chunk_size=5000)
    else:
        weeks = _weeks(path, until)
        for i, week in enumerate(weeks):
            helpers.bulk(client.options(request_timeout=120), actions(week), chunk_size=5000)
            week.unlink()
            if i < len(weeks) - 1:
                client.indices.rollover(alias=stream)
    client.indices.refresh(index=stream)
    client.options(request_timeout=600).indices.forcemerge(index=stream, max_num_segments=1)
    client.indices.refresh(index=stream)
    return time.monotonic() - began


# --- the requests ---------------------------------------------------------------------------------


def _subjects() -> dict[str, str]:
    """The busiest community, the user with the most articles, the most viewed article, each
    from the store itself, and the site's users who open the pages."""
    from django.contrib.auth import get_user_model
    from eventtrail.analytics import compute
    from eventtrail.analytics.params import parse
    from eventtrail.stores import get_store

    store = get_store()
    base = parse({}, {"interval"})
    community = store.tally(compute.where(base), compute.COMMUNITY, size=1)[0].key
    user = store.tally(compute.where(base, actions=[compute.CREATE]), compute.USER, size=1)[0].key
    viewed = store.tally(compute.where(base, actions=[compute.VIEW], user=user),
                         compute.TARGET, size=1)
    article = viewed[0].key if viewed else store.tally(
        compute.where(base, actions=[compute.VIEW]), compute.TARGET, size=1)[0].key
    staff = get_user_model()._default_manager.filter(is_superuser=True).order_by("pk").first()
    assert staff is not None, "the seeded site has a superuser"
    return {"community": community, "user": user, "article": article, "staff": str(staff.pk)}


def requests(who: dict[str, str]) -> list[tuple[str, str, str]]:
    """(name, URL, signed-in user): what the three pages load and poll, every page period, and
    every /api/analytics/ endpoint with its defaults, plus the documented tz and interval
    examples. The user's own page is opened by that user; everything else by staff."""
    c, u, a = who["community"], who["user"], who["article"]
    pages = [
        ("page: site data.json (30d)", "/analytics/site/data.json", "staff"),
        ("page: community data.json (30d)", f"/analytics/c/{c}/data.json", "staff"),
        ("page: my activity data.json (30d)", "/analytics/me/data.json", "user"),
        ("page: site HTML (30d)", "/analytics/site/", "staff"),
        *[(f"page: site data.json ({p})", f"/analytics/site/data.json?period={p}", "staff")
          for p in ("7d", "90d", "365d", "all")],
    ]
    api = [
        ("trending", f"trending/?community={c}"),
        ("most-viewed", "most-viewed/"),
        ("most-viewed (community)", f"most-viewed/?community={c}"),
        ("user-most-viewed", f"user-most-viewed/?user={u}"),
        ("user-articles", f"user-articles/?user={u}"),
        ("active-users", "active-users/"),
        ("active-users (community)", f"active-users/?community={c}"),
        ("active-users tz=Asia/Kathmandu", "active-users/?tz=Asia/Kathmandu"),
        ("events-over-time", "events-over-time/"),
        ("events-over-time tz=Europe/Paris", "events-over-time/?tz=Europe/Paris"),
        ("events-over-time interval=week", "events-over-time/?interval=week"),
        ("events-over-time interval=hour", "events-over-time/?interval=hour&from=now-2d"),
        # Zones off the hour (India +5:30, Nepal +5:45) and buckets under an hour: the rollups
        # must still answer them, and fixed buckets finer than any rollup read the events.
        ("events-over-time tz=Asia/Kolkata", "events-over-time/?tz=Asia/Kolkata"),
        ("events-over-time interval=hour tz=Asia/Kolkata",
         "events-over-time/?interval=hour&tz=Asia/Kolkata&from=now-7d"),
        ("events-over-time interval=30m", "events-over-time/?interval=30m&from=now-7d"),
        ("events-over-time interval=5m", "events-over-time/?interval=5m&from=now-3d"),
        # Long series of buckets that start inside quarter hours: the most buckets a series may
        # have (1,000), over all the data.
        ("events-over-time interval=50m", "events-over-time/?interval=50m&from=now-34d"),
        ("active-users interval=50m", "active-users/?interval=50m&from=now-34d"),
        ("active-users interval=20m", "active-users/?interval=20m&from=now-13d"),
        ("new-returning interval=50m", "new-returning/?interval=50m&from=now-34d"),
        ("events-over-time interval=7m", "events-over-time/?interval=7m&from=now-4d"),
        ("user-events-over-time", f"user-events-over-time/?user={u}"),
        ("top-members", f"top-members/?community={c}"),
        ("content-changes", "content-changes/"),
        ("new-returning", "new-returning/"),
        ("new-returning tz=America/New_York", "new-returning/?tz=America/New_York"),
        ("reading-depth", "reading-depth/"),
        ("video-completion", "video-completion/"),
        ("also-read", f"also-read/?article={a}&user={u}"),
        ("communities-for-you", f"communities-for-you/?user={u}"),
    ]
    return pages + [(f"api: {name}", f"/api/analytics/{path}", "staff") for name, path in api]


def _clients(who: dict[str, str]) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    users = get_user_model()._default_manager
    out = {}
    for role in ("staff", "user"):
        client = Client()
        client.force_login(users.get(pk=who[role]))
        out[role] = client
    return out


def _get(client: Any, url: str, etag: str | None = None) -> tuple[float, Any]:
    headers = {"HTTP_IF_NONE_MATCH": etag} if etag else {}
    began = time.perf_counter()
    response = client.get(url, **headers)
    elapsed = (time.perf_counter() - began) * 1000
    expected = 304 if etag else 200
    if response.status_code != expected:
        raise SystemExit(f"{url}: {response.status_code} (expected {expected}): "
                         f"{response.content[:300]!r}")
    return elapsed, response


def _new_event(who: dict[str, str]) -> None:
    """One article view arriving now, as a live site's worker delivers it."""
    from eventtrail.build import prepare
    from eventtrail.capture import draft_for
    from eventtrail.conf import get_config

    draft = draft_for("article.view", {
        "eventtrail.community.slug": who["community"], "eventtrail.target.type": "article",
        "eventtrail.target.id": who["article"], "user.id": who["user"],
        "http.response.status_code": 200})
    prepared = prepare(draft)
    assert prepared is not None
    config = get_config()
    if config["STORE"] == "database":
        from eventtrail.delivery.sinks import DatabaseSink

        DatabaseSink("events").send([prepared[1]])
    else:
        from eventtrail.stores import get_store

        get_store().client.index(index=config["DATA_STREAM"], document=json.loads(prepared[1]),
                                 op_type="create", refresh=True)


def _summary(samples: list[float]) -> dict[str, Any]:
    from bench import _common

    return {"p50": round(_common.median(samples), 1),
            "p95": round(_common.percentile(samples, 95), 1), "n": len(samples)}


def _measure(repeat: int, budget: float) -> dict[str, dict[str, Any]]:
    who = _subjects()
    clients = _clients(who)
    results: dict[str, dict[str, Any]] = {}
    # Every request, WARM_PASSES times, before any is timed: a just-started engine's JVM compiles
    # its search code over its first requests (a site page 169, 126, then 94 ms p50 in three
    # runs of seven, one after the other, on five weekly indices); a site's engine has long
    # been running. The cold figure is the first request's, measured on its own before this.
    for _ in range(WARM_PASSES):
        for _name, url, role in requests(who):
            _get(clients[role], url)
    for name, url, role in requests(who):
        client = clients[role]
        _get(client, url)  # warm: a page that polls has its caches
        samples: list[float] = []
        spent = 0.0
        while len(samples) < repeat and (len(samples) < 3 or spent < budget):
            elapsed, _ = _get(client, url)
            samples.append(elapsed)
            spent += elapsed / 1000
        results[name] = _summary(samples)
    # A live page's two polls: nothing new (ETag still holds: 304), and one event just arrived.
    site = "/analytics/site/data.json"
    unchanged = []
    for _ in range(max(repeat, 3)):
        # The tag holds the minute (relative periods move with the clock): one taken just before
        # a minute turns is refreshed once.
        for attempt in range(2):
            _, response = _get(clients["staff"], site)
            try:
                unchanged.append(_get(clients["staff"], site, response["ETag"])[0])
                break
            except SystemExit:
                if attempt:
                    raise
    results["poll: site data.json, nothing new (304)"] = _summary(unchanged)
    fresh = []
    # Twice the samples of the others: one slow sample in a few would otherwise be the p95.
    for _ in range(max(3, 2 * repeat)):
        _new_event(who)
        fresh.append(_get(clients["staff"], site)[0])
    results["poll: site data.json, one event just arrived"] = _summary(fresh)
    return results


def _first_request() -> float:
    """The first page request this process serves (caches cold, rollups as the load left them)."""
    who = _subjects_cold()
    client = _clients(who)["staff"]
    return round(_get(client, "/analytics/site/data.json")[0], 1)


def _subjects_cold() -> dict[str, str]:
    """Only the signed-in staff user: picking subjects would warm the store first."""
    from django.contrib.auth import get_user_model

    staff = get_user_model()._default_manager.filter(is_superuser=True).order_by("pk").first()
    assert staff is not None
    return {"staff": str(staff.pk), "user": str(staff.pk)}


# --- one store per child process -----------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    events_url = args.events_url or ""
    _django(work / args.store, events_url)
    docs = work / "prepared.jsonl"
    meta_path = work / "meta.json"
    if not docs.exists():  # the first store's child generates; the others reuse the file
        meta = _seed_and_generate(args.events, docs)
        meta_path.write_text(json.dumps(meta))
    _seed_site()
    meta = json.loads(meta_path.read_text())
    from django.conf import settings

    report: dict[str, Any] = {"store": args.store, "generate_seconds": meta["generate_seconds"],
                              "until": meta["until"], "load_before": os.getloadavg()}
    if args.store.startswith("engine"):
        from tests.support.engine import Engine
        from tests.support.es_adapter import OpenSearchCompatNode

        node = Engine(heap=args.heap).start()
        try:
            stream = "logs-eventtrail-bench"
            weekly = meta["until"] if args.store == "engine-weekly" else None
            report["load_seconds"] = round(_load_engine(docs, node.url, stream, weekly), 1)
            from tests.support import es_adapter

            streams = es_adapter.client(node.url).indices.get_data_stream(name=stream)
            report["backing_indices"] = len(streams["data_streams"][0]["indices"])
            from django.test.utils import override_settings

            # As a changed setting is announced: every cache of the configuration (the store
            # built, the STORE class resolved) is dropped.
            override_settings(EVENTTRAIL={
                **settings.EVENTTRAIL, "STORE": "elasticsearch", "ELASTICSEARCH_HOSTS": [node.url],
                "DATA_STREAM": stream, "ELASTICSEARCH_OPTIONS": {
                    "node_class": OpenSearchCompatNode, "request_timeout": 60}}).enable()
            report["first_ms"] = _first_request()
            report["latency_ms"] = _measure(args.repeat, args.budget)
        finally:
            node.stop()
    else:
        from eventtrail.models import StoredEvent

        loaded = work / f"{args.store}.loaded"
        if args.store == "sqlite" and loaded.exists() and StoredEvent.objects.using("events").exists():
            report["load_seconds"] = float(loaded.read_text())  # a kept --work directory
            report["reused"] = True
        else:
            report["load_seconds"] = round(_load_database(docs), 1)
            loaded.write_text(str(report["load_seconds"]))
        report["first_ms"] = _first_request()
        report["latency_ms"] = _measure(args.repeat, args.budget)
    report["load_after"] = os.getloadavg()
    print("RESULT " + json.dumps(report), flush=True)


class Postgres:
    """A throwaway PostgreSQL cluster on a free port, run as the postgres user."""

    def __init__(self, work: Path) -> None:
        self.dir = work / "pg"
        self.port = 0

    def start(self) -> str:
        import socket

        binary = PG_BIN[-1]
        shutil.rmtree(self.dir, ignore_errors=True)  # a kept --work directory: a fresh cluster
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
    parser.add_argument("--repeat", type=int, default=20, help="samples per request, at most")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds per request after which no more samples are taken (min 3)")
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
    print(f"load average {_load()} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.work and (work / "meta.json").exists():
            kept = sum(1 for _ in (work / "prepared.jsonl").open())
            if abs(kept - args.events) > args.events // 100:
                parser.error(f"{work} holds {kept} events, not {args.events}")
        work.chmod(0o755)  # the postgres user walks into its cluster directory
        for store in stores:
            command = [sys.executable, __file__, "--child", store, "--work", str(work),
                       "--events", str(args.events), "--repeat", str(args.repeat),
                       "--budget", str(args.budget), "--heap", args.heap]
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
                if reports:  # what the stores before it measured is kept
                    print(render(reports, args.events))
                return 1
            reports.append(json.loads(lines[-1][len("RESULT "):]))
            print(render(reports[-1:], args.events), flush=True)  # each store as it ends
            if args.json:
                Path(args.json).write_text(json.dumps({"events": args.events,
                                                       "stores": reports}, indent=2))
    if len(reports) > 1:
        print(render(reports, args.events))
    print(f"load average {_load()} at the end")
    return 0


TARGET_MS = {"sqlite": 500, "postgres": 500, "engine": 200, "engine-weekly": 200}


def _load(values: Any = None) -> str:
    return ", ".join(f"{x:.2f}" for x in (values or os.getloadavg()))


def render(reports: list[dict[str, Any]], events: int) -> str:
    """Markdown: p50 / p95 per request per store; a p95 over the store's target is marked."""
    names = list(reports[0]["latency_ms"]) if reports else []
    head = "| request | " + " | ".join(
        f"{r['store']} p50 / p95 ms (target {TARGET_MS[r['store']]})" for r in reports) + " |"
    lines = [f"{events:,} events; p95 over the target in bold", "", head,
             "|---" * (len(reports) + 1) + "|"]

    def cell(store: str, p50: float, p95: float, n: int | None = None) -> str:
        mark = f"**{p95}**" if p95 > TARGET_MS[store] else str(p95)
        return f"{p50} / {mark}" + (f" ({n})" if n and n < 3 else "")

    lines.append("| first request after start (site data.json) | " + " | ".join(
        f"{r['first_ms']}" + (" (reused store)" if r.get("reused") else "")
        for r in reports) + " |")
    for name in names:
        cells = [cell(r["store"], r["latency_ms"][name]["p50"], r["latency_ms"][name]["p95"])
                 for r in reports]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    over = {r["store"]: sum(1 for v in r["latency_ms"].values()
                            if v["p95"] > TARGET_MS[r["store"]]) for r in reports}
    for r in reports:
        indices = (f" into {r['backing_indices']} backing indices" if "backing_indices" in r
                   else "")
        lines.append(f"{r['store']}: generated in {r['generate_seconds']} s, loaded in "
                     f"{r['load_seconds']} s{indices}; {over[r['store']]} of {len(names)} requests over "
                     f"the target; samples per request {min(v['n'] for v in r['latency_ms'].values())}"
                     f" to {max(v['n'] for v in r['latency_ms'].values())}; load average "
                     f"{_load(r['load_before'])} before, {_load(r['load_after'])} after")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
