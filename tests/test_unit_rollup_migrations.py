"""Migration 0011 replaces the hourly rollups by quarter-hour ones, and 0013 adds five-minute
ones. On a store whose rollups were built, each fills its tables from the events itself (so the
first request after an upgrade does not rebuild every rollup), with exactly the rows a rebuild
makes; on one whose rollups were never built, they are left to the first query. SQLite and
PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from eventtrail.models import RollupState
from eventtrail.stores.database import UNITS, ensure_rollups, reset_rollups

from tests.support.migrated import empty_database

BEFORE = ("eventtrail", "0010_rollup_covering_indexes")
AFTER = ("eventtrail", "0014_visitor_rollups")


def _rows(alias: str) -> dict[str, set[tuple]]:
    return {model.__name__: set(model._default_manager.using(alias).values_list(
        "start", "grain", "events")) for model in UNITS}


def _store_events(executor: MigrationExecutor, alias: str, built: bool) -> None:
    apps = executor.loader.project_state([BEFORE]).apps
    old = apps.get_model("eventtrail", "StoredEvent")
    day = datetime(2026, 11, 30, 23, tzinfo=UTC)
    rows = []
    for i in range(120):
        at = day + timedelta(minutes=7 * i, seconds=i % 13)  # across two UTC days
        rows.append(old(
            id=f"e{i}", timestamp=at, action=["page.view", "article.state", "user.login"][i % 3],
            document={}, user_id=None if i % 5 == 0 else f"u{i % 4}",
            community_slug=None if i % 7 == 0 else f"c{i % 2}",
            target_type="article" if i % 3 != 2 else None,
            target_state="published" if i % 3 == 1 else None,
            status_code=[200, 404, None][i % 3], is_bot=i % 11 == 0))
    old._default_manager.using(alias).bulk_create(rows)
    if built:
        apps.get_model("eventtrail", "RollupState")._default_manager.using(alias).create(
            name="daily", checked_to=datetime.now(UTC))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_upgrade_fills_the_quarter_hours_as_a_rebuild_would(kind, django_db_blocker):
    with django_db_blocker.unblock(), empty_database(kind) as alias:
        executor = MigrationExecutor(connections[alias])
        executor.migrate([BEFORE])
        _store_events(executor, alias, built=True)
        MigrationExecutor(connections[alias]).migrate([AFTER])
        migrated = _rows(alias)
        assert all(migrated.values()), migrated
        assert RollupState.objects.using(alias).get(name="daily").checked_to is not None
        reset_rollups(alias)
        ensure_rollups(alias)
        assert _rows(alias) == migrated
        assert sum(n for _, _, n in migrated["QuarterHourUserRollup"]) == 120
        assert sum(n for _, _, n in migrated["FiveMinuteActionRollup"]) == 120
        assert sum(n for _, _, n in migrated["FiveMinuteUserRollup"]) == 120
        assert sum(n for _, _, n in migrated["QuarterHourVisitorRollup"]) == 120


def test_the_upgrade_leaves_rollups_never_built_to_the_first_query(django_db_blocker):
    with django_db_blocker.unblock(), empty_database("sqlite") as alias:
        executor = MigrationExecutor(connections[alias])
        executor.migrate([BEFORE])
        _store_events(executor, alias, built=False)
        MigrationExecutor(connections[alias]).migrate([AFTER])
        assert _rows(alias) == {model.__name__: set() for model in UNITS}
        ensure_rollups(alias)
        assert sum(n for _, _, n in _rows(alias)["QuarterHourActionRollup"]) == 120
