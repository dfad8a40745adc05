"""The database store's rollups answer exactly what a raw scan of the events answers.

Every analytics primitive runs twice on the same history, once free to read the daily rollups
and once made to scan the events table, over random periods: UTC midnights, ends cut just after
a day's last event (a period ending "now"), starts just before a day's first, arbitrary moments
and open ends, with random filters, intervals and time zones. Both must agree to the event, and
a good share of the answers must really have come from the rollups."""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db.models import Max, Min
from eventtrail.analytics import compute
from eventtrail.delivery.sinks import DatabaseSink
from eventtrail.models import StoredEvent
from eventtrail.stores import database
from eventtrail.stores.database import DatabaseStore, ensure_rollups, reset_rollups
from eventtrail.stores.query import AggQuery, Filter, QueryError, Where, parse_interval

from tests.support import analytics_data as data
from tests.support.analytics_fixtures import history, pg_history  # noqa: F401

TZS = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Chatham",
       "Asia/Kathmandu", "America/St_Johns"]
# Whole quarter hours (the quarter-hour rollups' buckets), and buckets that start inside quarter
# hours (50m, 20m, 7m, 5m: those quarter hours read from the events table, or all of it).
INTERVALS = ["day", "week", "month", "hour", "6h", "30m", "15m", "50m", "20m", "7m", "5m"]


@pytest.fixture(scope="module", params=[
    pytest.param("events", marks=pytest.mark.django_db(databases=["default", "events"])),
    pytest.param("postgresql", marks=[
        pytest.mark.postgres,
        pytest.mark.django_db(databases=["default", "events", "analytics_pg"])]),
])
def alias(request, history):  # noqa: F811
    return request.getfixturevalue("pg_history") if request.param == "postgresql" else "events"


def _moments(alias: str, rng: random.Random) -> list[datetime | None]:
    events = StoredEvent.objects.using(alias)
    bounds = events.aggregate(first=Min("timestamp"), last=Max("timestamp"))
    first, last = bounds["first"], bounds["last"]
    days = (last.date() - first.date()).days + 1
    moments: list[datetime | None] = [None]
    for _ in range(6):
        day = datetime.combine(first.date() + timedelta(days=rng.randrange(days + 1)),
                               datetime.min.time(), UTC)
        moments.append(day)  # a UTC midnight
        within = events.filter(timestamp__gte=day, timestamp__lt=day + timedelta(days=1))
        edge = within.aggregate(first=Min("timestamp"), last=Max("timestamp"))
        if edge["last"] is not None:
            # Just after the day's last event: nothing lies beyond it that day ("now").
            moments.append(edge["last"] + timedelta(milliseconds=rng.randrange(1, 5000)))
            moments.append(edge["first"] - timedelta(milliseconds=rng.randrange(0, 5000)))
        moments.append(first + (last - first) * rng.random())  # anywhere
    moments.append(last + timedelta(seconds=1))
    return moments


def _and(where: Where, extra: Filter) -> Where:
    return replace(where, filters=(*where.filters, extra))


def _answers(store: DatabaseStore, where, tz: str, interval, people: list[str]) -> dict:
    out = {}
    for field in (compute.TARGET, compute.USER, compute.COMMUNITY, "event.action"):
        tallied = store.tally(where, field, size=15)
        out[f"tally {field}"] = tallied
        keys = [t.key for t in tallied[:5]]
        out[f"tally {field} keys"] = store.tally(where, field, keys=keys + ["no-such-key"])
        out[f"daily {field}"] = store.daily_tally(where, field, keys)
    out["users"] = store.users(where, limit=1000)
    out["count_users"] = store.count_users(where)
    out["first_seen"] = store.first_seen(where, people)
    out["active_pairs"] = store.active_pairs(where, interval, tz)
    out["user_counts"] = store.user_counts(where, interval, tz)
    assert out["user_counts"] == dict(Counter(b for _, b in out["active_pairs"]))
    out["counts"] = store.counts(where, None, interval, tz)
    out["counts by action"] = store.counts(where, "event.action", interval, tz)
    out["top_users"] = store.top_users(where, 10)
    # Engagement, from the target rollup's scroll depth and video columns.
    scrolls = _and(where, Filter("event.action", "exact", compute.SCROLL))
    read = [t.key for t in store.tally(scrolls, compute.TARGET, size=8)]
    out["split depth"] = store.split_tally(scrolls, compute.TARGET, read, compute.DEPTH,
                                           compute.QUARTILES)
    out["tally depth"] = store.tally(where, compute.DEPTH, size=15)
    out["tally video"] = store.tally(where, compute.VIDEO, size=15)
    out["tally video at 50"] = store.tally(_and(where, Filter(compute.QUARTILE, "exact", 50)),
                                           compute.VIDEO, size=15)
    out["freshness"] = store.freshness(where)
    # The events API's plain histogram (``aggregate``: answered as ``counts``) against its
    # generic grouping, which a second metric makes it take.
    histogram = AggQuery(where, (), interval, tz, ("count",), 10, False, None)
    out["histogram"] = _buckets(store, histogram)
    grouped = _buckets(store, replace(histogram, metrics=("count", "unique_users")))
    assert out["histogram"] == (grouped if isinstance(grouped, str) else [
        {k: v for k, v in b.items() if k != "unique_users"} for b in grouped])
    return out


def _buckets(store: DatabaseStore, query: AggQuery) -> list | str:
    try:
        return store.aggregate(query).buckets
    except QueryError as exc:  # too many buckets: the same refusal either way
        return f"{exc.param}: {exc.message}"


@pytest.fixture(scope="module")
def trickled(alias, django_db_blocker):
    """More views arriving through the database sink a few at a time, as a live site's do, onto
    old days and new, some batches sent twice: each is added to the rollups in place. Removed
    afterwards (the history is the module's)."""
    with django_db_blocker.unblock():  # committed, outside any test's transaction
        ids = _trickle(alias)
    yield ids
    with django_db_blocker.unblock():
        StoredEvent.objects.using(alias).filter(id__in=ids).delete()
        reset_rollups(alias)


def _trickle(alias: str) -> list[str]:
    rng = random.Random(7)
    events = StoredEvent.objects.using(alias)
    bounds = events.aggregate(first=Min("timestamp"), last=Max("timestamp"))
    span = bounds["last"] - bounds["first"]
    targets = sorted(set(events.exclude(target_id=None).values_list("target_id", flat=True)))
    communities = sorted(set(events.exclude(community_slug=None)
                             .values_list("community_slug", flat=True)))
    views = [data._view(bounds["first"] + span * rng.random(),
                        rng.choice([None, "7001", "7002", "7003"]), rng.choice(targets[:20]),
                        rng.choice(communities), rng.choice([200, 200, 200, 404]))
             for _ in range(400)]
    docs = [data.prepare(v)[1] for v in views]
    sink = DatabaseSink(alias)
    ensure_rollups(alias)
    for i in range(0, len(docs), 7):
        sink.send(docs[i:i + 7])
        if i % 70 == 0:
            sink.send(docs[i:i + 7])  # re-sent after a lost acknowledgement
    return [json.loads(d)["event"]["id"] for d in docs]


def test_rollups_answer_exactly_what_the_events_table_answers(alias, trickled):
    rng = random.Random(2029)
    rolled, raw = DatabaseStore(alias), DatabaseStore(alias, rollups=False)
    moments = _moments(alias, rng)
    events = StoredEvent.objects.using(alias)
    assert events.filter(id__in=trickled).count() == len(trickled)
    communities = sorted(set(events.exclude(community_slug=None)
                             .values_list("community_slug", flat=True)))
    people = sorted(set(events.exclude(user_id=None).values_list("user_id", flat=True)))
    targets = sorted(set(events.exclude(target_id=None).values_list("target_id", flat=True)))
    cases = 0
    for _ in range(40):
        start, end = rng.choice(moments), rng.choice(moments)
        if start is not None and end is not None and start > end:
            start, end = end, start
        tz = rng.choice(["UTC", "UTC", *TZS])
        interval = parse_interval(rng.choice(INTERVALS))
        filters = rng.choice([
            {}, {"actions": [compute.VIEW]}, {"actions": [compute.VIEW, compute.CREATE]},
            {"community": rng.choice(communities)}, {"user": rng.choice(people)},
            {"target": rng.choice(targets), "actions": [compute.VIEW]},
            {"equals": {"eventtrail.target.type": "article"}},
        ])
        where = compute.where(None, start=start, end=end, **filters)
        sample = rng.sample(people, min(20, len(people)))
        assert _answers(rolled, where, tz, interval, sample) == \
            _answers(raw, where, tz, interval, sample), (start, end, tz, interval, filters)
        cases += 1
    assert raw.rollup_reads == 0
    # Most periods above have clean ends; the rollups must have answered many of the calls.
    assert rolled.rollup_reads >= cases * 5, rolled.rollup_reads


def test_cut_quarter_hours_are_read_from_the_events(tmp_path, django_db_blocker):
    """A period that starts inside a quarter hour with earlier events, and ends inside one with
    later events: first_seen, users and counts find what lies only in those cut quarter hours (a
    user whose first event of the period falls there), as a scan of the events does."""
    from tests.support.sqlite_alias import sqlite_events

    day = datetime(2026, 11, 2, tzinfo=UTC)
    at = {"early": day + timedelta(hours=10, minutes=31), "cut": day + timedelta(hours=10,
                                                                                 minutes=40),
          "whole": day + timedelta(hours=12), "late": day + timedelta(hours=14, minutes=47),
          "after": day + timedelta(hours=14, minutes=55)}
    views = [data._view(at["early"], "a", "1"), data._view(at["cut"], "a", "1"),
             data._view(at["cut"], "b", "2"), data._view(at["whole"], "a", "1"),
             data._view(at["late"], "c", "2"), data._view(at["after"], "c", "2")]
    with django_db_blocker.unblock(), sqlite_events("cut_hours", tmp_path / "c.sqlite3") as alias:
        DatabaseSink(alias).send([data.prepare(v)[1] for v in views])
        rolled, raw = DatabaseStore(alias), DatabaseStore(alias, rollups=False)
        where = compute.where(None, start=day + timedelta(hours=10, minutes=35),
                              end=day + timedelta(hours=14, minutes=50))
        hours = parse_interval("hour")
        for store in (rolled, raw):
            assert store.first_seen(where, ["a", "b", "c"]) == {
                "a": at["cut"], "b": at["cut"], "c": at["late"]}
            assert store.users(where, limit=10) == ["a", "b", "c"]
            assert sum(store.counts(where, None, hours, "Asia/Kolkata").values()) == 4
        assert store.active_pairs(where, hours, "UTC") == rolled.active_pairs(where, hours, "UTC")
        assert rolled.rollup_reads >= 3


def test_quarter_hours_serve_every_zone_of_today_and_old_offsets_are_read_raw(
        tmp_path, django_db_blocker):
    """Every zone's offset today is a whole number of quarter hours (Nepal +5:45, Chatham
    +12:45), so their days and hours are made of whole quarter hours, with nothing read raw. A
    zone's old offset (Amsterdam kept +0:19:32 until 1937) starts its days inside a quarter
    hour: that quarter hour is read from the events, and the counts stay exact."""
    from eventtrail.stores.database import quarter_plan

    from tests.support.sqlite_alias import sqlite_events

    # Amsterdam's midnight of 11 June 1930 (summer time, +1:19:32) was 22:40:28 UTC on the 10th.
    before, after = (datetime(1930, 6, 10, 22, 38, tzinfo=UTC),
                     datetime(1930, 6, 10, 22, 42, tzinfo=UTC))
    today = datetime(2026, 11, 2, 9, tzinfo=UTC)
    views = [data._view(before, "a", "1"), data._view(after, "b", "1"),
             data._view(today, "a", "1")]
    day = parse_interval("day")
    with django_db_blocker.unblock(), sqlite_events("zones", tmp_path / "z.sqlite3") as alias:
        DatabaseSink(alias).send([data.prepare(v)[1] for v in views])
        month = compute.where(None, start=datetime(2026, 10, 15, tzinfo=UTC),
                              end=datetime(2026, 11, 15, tzinfo=UTC))
        for tz in ["Asia/Kathmandu", "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns",
                   "Australia/Lord_Howe", "Australia/Eucla"]:
            for interval in ("day", "hour", "week", "month", "30m"):
                plan = quarter_plan(alias, month, parse_interval(interval), tz)
                assert plan is not None and not plan.windows, (tz, interval)
        # 5m over a month splits every quarter hour, more than a series may have buckets.
        assert quarter_plan(alias, month, parse_interval("5m"), "UTC") is None

        old = compute.where(None, start=datetime(1930, 6, 1, tzinfo=UTC),
                            end=datetime(1930, 6, 20, tzinfo=UTC))
        plan = quarter_plan(alias, old, day, "Europe/Amsterdam")
        assert plan is not None and len(plan.split) == 19, plan
        assert datetime(1930, 6, 10, 22, 30, tzinfo=UTC) in plan.split
        # Of that quarter hour, the five minutes the day starts in are read from the events.
        assert datetime(1930, 6, 10, 22, 40, tzinfo=UTC) in plan.split_fives
        assert (datetime(1930, 6, 10, 22, 40, tzinfo=UTC),
                datetime(1930, 6, 10, 22, 45, tzinfo=UTC)) in plan.windows
        rolled, raw = DatabaseStore(alias), DatabaseStore(alias, rollups=False)
        counted = rolled.counts(old, None, day, "Europe/Amsterdam")
        assert counted == raw.counts(old, None, day, "Europe/Amsterdam")
        assert counted == {(None, int(datetime(1930, 6, 9, 22, 40, 28, tzinfo=UTC).timestamp())
                            * 1000): 1,
                           (None, int(datetime(1930, 6, 10, 22, 40, 28, tzinfo=UTC).timestamp())
                            * 1000): 1}
        pairs = rolled.active_pairs(old, day, "Europe/Amsterdam")
        assert pairs == raw.active_pairs(old, day, "Europe/Amsterdam") and len(pairs) == 2
        assert rolled.rollup_reads >= 2


def test_buckets_that_start_inside_quarter_hours_read_only_those_from_the_events(
        tmp_path, django_db_blocker):
    """50-minute buckets start on a quarter hour every 150 minutes and inside one twice in
    between: the quarter hours a bucket starts inside are read from the five-minute rollups, on
    both sides of that start (a user on either side, in the same quarter hour), and the rest
    from the quarter-hour rollups, exactly as a scan of the events answers (and as the scan
    answers buckets that start inside five minutes)."""
    from eventtrail.stores.database import quarter_plan

    from tests.support.sqlite_alias import sqlite_events

    day = datetime(2026, 11, 3, tzinfo=UTC)  # 2026-11-03 00:00 is a whole number of 150 minutes
    assert int(day.timestamp()) % 9000 == 0
    # 00:50 starts a bucket inside 00:45-01:00: one view each side of it, by two users.
    at = [day + timedelta(minutes=m, seconds=s) for m, s in
          ((3, 0), (46, 10), (49, 59), (50, 0), (52, 30), (101, 0), (149, 59), (150, 0),
           (700, 0), (2000, 0))]
    views = [data._view(t, "ab"[i % 2], str(i % 3)) for i, t in enumerate(at)]
    fifty = parse_interval("50m")
    with django_db_blocker.unblock(), sqlite_events("inside", tmp_path / "i.sqlite3") as alias:
        DatabaseSink(alias).send([data.prepare(v)[1] for v in views])
        period = compute.where(None, start=day, end=day + timedelta(days=2))
        plan = quarter_plan(alias, period, fifty, "UTC")
        assert plan is not None
        assert len(plan.split) == 2 * 2 * 24 * 60 // 150  # two of every ten quarter hours
        assert day + timedelta(minutes=45) in plan.split
        assert day + timedelta(minutes=150) not in plan.split
        # Every bucket starts on a five minutes: nothing is read from the events.
        assert not plan.split_fives and not plan.windows
        rolled, raw = DatabaseStore(alias), DatabaseStore(alias, rollups=False)
        for interval, tz in ((fifty, "UTC"), (fifty, "Asia/Kathmandu"),
                             (parse_interval("20m"), "UTC"), (parse_interval("7m"), "UTC")):
            counted = rolled.counts(period, "event.action", interval, tz)
            assert counted == raw.counts(period, "event.action", interval, tz), interval
            pairs = rolled.active_pairs(period, interval, tz)
            assert pairs == raw.active_pairs(period, interval, tz), interval
            # Users per bucket, counted in SQL over the union of the parts (a user in a
            # bucket's quarter hours and its five minutes both counts once), or from the
            # pairs when the union would take too many parameters.
            per_bucket = dict(Counter(b for _, b in pairs))
            assert rolled.user_counts(period, interval, tz) == per_bucket, interval
            assert raw.user_counts(period, interval, tz) == per_bucket, interval
            with mock.patch.object(database, "MAX_PARAMS", 0):
                assert rolled.user_counts(period, interval, tz) == per_bucket, interval
        # 00:00-00:50 holds a at 00:03 (a whole quarter hour's row) and 00:49:59 (a five
        # minutes' row), and b: two users, not three.
        users = rolled.user_counts(period, fifty, "UTC")
        assert users[int(day.timestamp()) * 1000] == 2
        assert users[int((day + timedelta(minutes=50)).timestamp()) * 1000] == 2
        by_fifty = rolled.counts(period, None, fifty, "UTC")
        assert by_fifty[(None, int((day + timedelta(minutes=0)).timestamp()) * 1000)] == 3
        assert by_fifty[(None, int((day + timedelta(minutes=50)).timestamp()) * 1000)] == 2
        assert by_fifty[(None, int((day + timedelta(minutes=100)).timestamp()) * 1000)] == 2
        assert rolled.rollup_reads >= 7
        twenty = quarter_plan(alias, period, parse_interval("20m"), "UTC")
        assert twenty is not None and len(twenty.split) == 2 * 24 * 2 and not twenty.windows
        # 7m buckets start inside four of every seven five minutes: a scan costs less.
        assert quarter_plan(alias, period, parse_interval("7m"), "UTC") is None


def test_site_wide_user_questions_read_the_visitor_rollup_and_a_community_s_the_user_rollup():
    from eventtrail.models import QuarterHourUserRollup, QuarterHourVisitorRollup
    from eventtrail.stores.database import QUARTER_HOURS, rollup_model

    site = compute.where(None)
    assert rollup_model(site, ["user.id"], QUARTER_HOURS) is QuarterHourVisitorRollup
    one = compute.where(None, community="c")
    assert rollup_model(one, ["user.id"], QUARTER_HOURS) is QuarterHourUserRollup
