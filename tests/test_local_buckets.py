"""SQLite's calendar buckets in a time zone, by arithmetic in SQL (``LocalBucket``), put every
event in the same bucket as Django's Trunc (a Python function per row) did, across daylight
saving changes, half- and quarter-hour zones, a zone that moves by 30 minutes and one that
changes at midnight; and a composite page's ``after`` finds the same bucket again."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db.models.functions import Trunc
from eventtrail.models import StoredEvent
from eventtrail.stores.base import epoch_ms
from eventtrail.stores.database import LocalBucket, time_bucket, zone_offsets
from eventtrail.stores.query import parse_interval

ZONES = ["Europe/Paris", "America/New_York", "Pacific/Chatham", "Asia/Kolkata",
         "Australia/Lord_Howe", "America/Santiago", "Asia/Kathmandu", "UTC", "America/St_Johns"]
# Moments near each zone's changes in 2025 and 2026, and random ones across both years.
EDGES = ["2025-03-09T06:30:00", "2025-03-30T00:59:59", "2025-03-30T01:00:00", "2025-04-05T15:00",
         "2025-04-06T02:30:00", "2025-09-06T23:59:59", "2025-09-07T04:00:00",
         "2025-10-04T15:30:00", "2025-10-26T00:30:00", "2025-10-26T01:00:01",
         "2025-11-02T05:59:59", "2025-11-02T06:00:00", "2025-12-31T23:30:00",
         "2026-01-01T00:00:00", "2026-03-08T07:00:00", "2026-03-29T01:00:00"]


def _moments() -> list[datetime]:
    rng = random.Random(5)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out = [datetime.fromisoformat(e).replace(tzinfo=UTC) for e in EDGES]
    for edge in list(out):
        out += [edge + timedelta(minutes=m) for m in (-61, -31, -1, 1, 29, 59, 91)]
    out += [start + timedelta(seconds=rng.randrange(0, 2 * 365 * 86400)) for _ in range(1500)]
    return out


@pytest.mark.django_db(databases=["default", "events"])
@pytest.mark.parametrize("zone", ZONES)
def test_local_buckets_equal_truncs_in_every_zone(zone):
    moments = _moments()
    rows = [StoredEvent(id=f"lb-{i:05d}", timestamp=m, action="x", document={})
            for i, m in enumerate(moments)]
    events = StoredEvent.objects.using("events")
    events.bulk_create(rows)
    days = (min(moments).date(), max(moments).date())
    for calendar in ("hour", "day", "week", "month"):
        interval = parse_interval(calendar)
        bucketing = time_bucket(interval, zone, "sqlite", days)
        if calendar in {"hour", "day"} and zone == "UTC":
            assert not isinstance(bucketing.expression, LocalBucket)  # epoch arithmetic
        ours = dict(events.filter(id__startswith="lb-").annotate(t=bucketing.expression)
                    .values_list("id", "t"))
        theirs = dict(events.filter(id__startswith="lb-")
                      .annotate(t=Trunc("timestamp", calendar, tzinfo=ZoneInfo(zone)))
                      .values_list("id", "t"))
        for key, trunc in theirs.items():
            assert bucketing.to_ms(ours[key]) == epoch_ms(trunc), (zone, calendar, key)
            # A composite page's "after" (the bucket's ms) maps back to the same key.
            assert bucketing.key_of(epoch_ms(trunc)) == ours[key], (zone, calendar, key)


def test_zone_offsets_find_every_change():
    offsets = zone_offsets("Europe/Paris", datetime(2025, 1, 1).date(), datetime(2026, 12, 31).date())
    changes = [datetime.fromtimestamp(at, UTC) for at, _ in offsets[1:]]
    assert changes == [datetime(2025, 3, 30, 1, tzinfo=UTC), datetime(2025, 10, 26, 1, tzinfo=UTC),
                       datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)]
    assert [o for _, o in offsets] == [3600, 7200, 3600, 7200, 3600]
    assert zone_offsets("Asia/Kolkata", datetime(2025, 1, 1).date(),
                        datetime(2025, 12, 31).date())[0][1] == 19800
