"""The database sink keeps the rollups as events arrive."""
from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from eventtrail.build import prepare
from eventtrail.capture import draft_for
from eventtrail.delivery.sinks import DatabaseSink
from eventtrail.models import StoredEvent, TargetRollup, UserRollup
from eventtrail.stores.database import GRAINS, UNITS, ensure_rollups, reset_rollups

from tests.support import pg_fixture
from tests.support.sqlite_alias import sqlite_events


def _documents(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=5)
    out = []
    for i in range(n):
        user = rng.choice([None, "1", "2", "3", "4"])
        fields = {"eventtrail.community.slug": rng.choice(["a", "b"]),
                  "eventtrail.target.type": "article",
                  "eventtrail.target.id": str(rng.randrange(30)),
                  "url.path": f"/a/{i}", "http.response.status_code": rng.choice([200, 404])}
        if user:
            fields.update({"user.id": user, "user.name": f"user{user}-{rng.randrange(2)}"})
        at = start + timedelta(seconds=rng.randrange(5 * 86400))
        out.append(prepare(draft_for(rng.choice(["article.view", "article.edit"]), fields,
                                     at_ns=int(at.timestamp() * 1e9)))[1])
    return out


def _rollups(alias: str) -> tuple[Counter, Counter, dict, dict]:
    users, targets, names = Counter(), Counter(), {}
    units = {model.__name__: Counter(dict(
        ((start, grain), n) for start, grain, n in model._default_manager.using(alias)
        .values_list("start", "grain", "events"))) for model in UNITS}
    grain = ("day", "action", "community_slug", "target_type", "user_id", "is_bot",
             "status_code")
    for row in UserRollup.objects.using(alias).values(*grain, "events", "user_name"):
        key = tuple(row[c] for c in grain)
        users[key] += row["events"]
        if row["user_name"] is not None:
            names[key] = max(names.get(key, ""), row["user_name"])
    for row in TargetRollup.objects.using(alias).values(*grain, "target_id", "events"):
        targets[(*(row[c] for c in grain), row["target_id"])] += row["events"]
    return users, targets, names, units


def _row_counts(alias: str) -> tuple[int, ...]:
    return tuple(model._default_manager.using(alias).count() for model in GRAINS)


@contextmanager
def _store(kind: str, tmp_path, blocker) -> Iterator[str]:
    if kind == "postgresql":
        with pg_fixture.events_alias("sink_pg", [], blocker) as alias, blocker.unblock():
            yield alias
        return
    with blocker.unblock(), sqlite_events("sink_events", tmp_path / "e.sqlite3",
                                          mode=kind) as alias:
        yield alias


@pytest.mark.parametrize("kind", ["IMMEDIATE", "DEFERRED",
                                  pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_concurrent_sinks_keep_the_rollups_equal_to_a_rebuild(tmp_path, django_db_blocker, kind):
    """Four threads, each its own connection, send overlapping batches (each event arrives
    twice, from two sinks); the rollups they kept equal a rebuild from the events table, row
    for row: no grain was created twice (SQLite in both transaction modes, PostgreSQL)."""
    docs = _documents(1200, seed=3)
    with _store(kind, tmp_path, django_db_blocker) as alias:
        ensure_rollups(alias)
        errors: list[BaseException] = []

        def deliver(part: list[str]) -> None:
            sink = DatabaseSink(alias)
            try:
                for i in range(0, len(part), 25):
                    sink.send(part[i:i + 25])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connections[alias].close()

        halves = [docs[:600], docs[600:]]
        threads = [threading.Thread(target=deliver, args=(part,))
                   for part in (*halves, *[list(reversed(h)) for h in halves])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        assert StoredEvent.objects.using(alias).count() == 1200
        kept = _rollups(alias)
        assert sum(kept[0].values()) == sum(kept[1].values()) == 1200
        assert all(sum(counted.values()) == 1200 for counted in kept[3].values()), kept[3].keys()
        rows = _row_counts(alias)
        reset_rollups(alias)
        ensure_rollups(alias)
        assert _rollups(alias) == kept
        assert _row_counts(alias) == rows
