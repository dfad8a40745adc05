"""The engagement columns (scroll depth, video id and progress): what the sink stores, and what
migration 0008 fills in for events stored before it, on SQLite and PostgreSQL, agree."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from eventtrail import schema
from eventtrail.models import StoredEvent

from tests.support.migrated import empty_database

BEFORE, AFTER = ("eventtrail", "0007_rollup_grain_key"), ("eventtrail", "0008_engagement_columns")
LONG_ID = "v" * 129

# (scroll depth, video id, video progress) as documents carry them, and what the columns hold.
CASES = [
    ((50, None, None), (50, None, None)),
    ((100, "intro", 25), (100, "intro", 25)),
    ((50.7, 12, 75.0), (50, "12", 75)),
    (("75", "outro", "50"), (75, "outro", 50)),  # numbers as text, as Elasticsearch coerces
    ((True, True, "half"), (None, None, None)),  # what a long or keyword column refuses
    ((2**40, LONG_ID, -(2**31) - 1), (None, None, None)),  # beyond the columns
    ((-(2**31), "x" * 128, 2**31 - 1), (-(2**31), "x" * 128, 2**31 - 1)),  # at their bounds
    (({"deep": 1}, ["a"], None), (None, None, None)),
]


def _document(i: int, depth, video, progress) -> dict:
    doc: dict = {"@timestamp": "2026-12-01T10:00:00.000Z", "event": {"id": f"e{i}",
                                                                    "action": "browser.scroll"}}
    if depth is not None:
        doc["eventtrail"] = {"browser": {"scroll_depth": depth}}
    if video is not None or progress is not None:
        media = {k: v for k, v in (("id", video), ("progress", progress)) if v is not None}
        doc.setdefault("eventtrail", {})["video"] = media
    return doc


def test_the_sink_stores_what_each_column_can_hold():
    for i, (given, held) in enumerate(CASES):
        doc = _document(i, *given)
        row = StoredEvent.from_flat(schema.flatten(doc), doc)
        assert (row.scroll_depth, row.video_id, row.video_progress) == held, given


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_fills_the_columns_as_the_sink_would(kind, django_db_blocker):
    with django_db_blocker.unblock(), empty_database(kind) as alias:
        executor = MigrationExecutor(connections[alias])
        executor.migrate([BEFORE])
        old = executor.loader.project_state([BEFORE]).apps.get_model("eventtrail", "StoredEvent")
        at = datetime(2026, 12, 1, 10, tzinfo=UTC)
        docs = {f"e{i}": _document(i, *given) for i, (given, _) in enumerate(CASES)}
        old._default_manager.using(alias).bulk_create([
            old(id=key, timestamp=at, action="browser.scroll", document=json.loads(json.dumps(d)))
            for key, d in docs.items()])
        MigrationExecutor(connections[alias]).migrate([AFTER])
        stored = {key: (depth, video, progress) for key, depth, video, progress in
                  StoredEvent.objects.using(alias).values_list(
                      "id", "scroll_depth", "video_id", "video_progress")}
        assert stored == {f"e{i}": held for i, (_, held) in enumerate(CASES)}
