"""The interface every query store implements, and what it hands back."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from eventtrail import schema
from eventtrail.stores.query import PERCENTS, AggQuery, Interval, ListQuery, QueryError, Where

MAX_HISTOGRAM_BUCKETS = 10_000
# The shortest length of each calendar unit, so the bucket estimate never falls short.
_CALENDAR_SECONDS = {"hour": 3600, "day": 82800, "week": 601200, "month": 28 * 86400 - 3600}


# When the answer being built (a page, an endpoint) began, while it is built (``answering``): a
# store may let its questions share what it read after that moment (the search engine's counts
# of settled events), each answer then exact as of a moment after the request began.
AS_OF: ContextVar[float | None] = ContextVar("eventtrail_as_of", default=None)


@contextmanager
def answering() -> Iterator[None]:
    """Marks the answer built inside as one request's (``AS_OF``)."""
    token = AS_OF.set(time.monotonic())
    try:
        yield
    finally:
        AS_OF.reset(token)


class StoreUnavailable(RuntimeError):
    """The store cannot answer now (down, unreachable, misconfigured); the API says 503."""


@dataclass
class Page:
    """Hits in the order the caller asked for, with each hit's sort values."""

    hits: list[dict[str, Any]]
    sort_values: list[list[Any]]
    more: bool  # more hits lie beyond this page in the direction it was read
    total: int | None = None  # page mode: hits, capped at the window
    capped: bool = False


@dataclass
class Buckets:
    buckets: list[dict[str, Any]]
    after: list[Any] | None = None  # composite: key of the last bucket when more may follow
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tally:
    """Events and distinct signed-in users (``user.id``) for one value of a field."""

    key: str
    events: int
    users: int


class Store(Protocol):
    name: str

    def search(self, query: ListQuery) -> Page: ...

    def aggregate(self, query: AggQuery) -> Buckets: ...

    # --- exact primitives the analytics (eventtrail.analytics.compute) are built from ---------

    def tally(
        self, where: Where, field: str, *, keys: Sequence[str] | None = None, size: int = 10
    ) -> list[Tally]:
        """Per value of ``field``: most events first, then key; ``keys`` limits the values."""
        ...

    def daily_tally(
        self, where: Where, field: str, keys: Sequence[str]
    ) -> dict[str, dict[int, tuple[int, int]]]:
        """Per value in ``keys``, per UTC day (epoch ms): (events, distinct users)."""
        ...

    def split_tally(
        self, where: Where, field: str, keys: Sequence[str], by: str, values: Sequence[Any]
    ) -> dict[str, dict[str, int]]:
        """Per value in ``keys``, events per value of ``by`` among ``values`` (keys as text),
        in one pass: a reading-depth panel's four depths at once."""
        ...

    def users(self, where: Where, *, limit: int) -> list[str]:
        """Distinct user ids, in ascending order, at most ``limit``."""
        ...

    def count_users(self, where: Where) -> int: ...

    def first_seen(self, where: Where, users: Sequence[str]) -> dict[str, datetime]:
        """Each user's earliest event matching ``where``."""
        ...

    def active_pairs(self, where: Where, interval: Interval, tz: str) -> set[tuple[str, int]]:
        """Every (user id, bucket start in epoch ms) with at least one event."""
        ...

    def user_counts(self, where: Where, interval: Interval, tz: str) -> dict[int, int]:
        """Distinct users per bucket start (epoch ms): ``active_pairs`` counted per bucket."""
        ...

    def counts(self, where: Where, field: str | None, interval: Interval,
               tz: str) -> dict[tuple[str | None, int], int]:
        """Events per (value of ``field`` or None, bucket start in epoch ms); no empty ones."""
        ...

    def latest_states(self, where: Where, targets: Sequence[str]) -> dict[str, str]:
        """Per target id, ``eventtrail.target.state`` of its newest event matching ``where``."""
        ...

    def top_users(self, where: Where, size: int) -> list[tuple[str, str | None, int]]:
        """(user id, a user name it carried, events), most events first."""
        ...

    def freshness(self, where: Where) -> tuple[int, datetime | None]:
        """How many events match and the newest one's time: cheap, for ETags and "updated"."""
        ...


def project(doc: dict[str, Any], names: Sequence[str] | None) -> dict[str, Any]:
    """The document limited to ``names`` (all of it when None), nested as stored."""
    if names is None:
        return doc
    flat = {n: schema.lookup(doc, n) for n in names}
    return schema.unflatten({n: v for n, v in flat.items() if v is not None})


def percentile(sorted_values: Sequence[float], percent: float) -> float | None:
    """Linear interpolation between closest ranks (SQL's percentile_cont)."""
    if not sorted_values:
        return None
    rank = (len(sorted_values) - 1) * percent / 100
    low, high = math.floor(rank), math.ceil(rank)
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low))


def users_per_bucket(pairs: Iterable[tuple[Any, int]]) -> dict[int, int]:
    """Active (user, bucket) pairs counted per bucket: ``Store.user_counts`` from the pairs."""
    return dict(Counter(bucket for _, bucket in pairs))


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def render_time(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).isoformat()


def bucket_start(value: datetime, interval: Interval, tz: str) -> datetime:
    """The start of the bucket holding ``value``: calendar ones in ``tz``, fixed ones on UTC."""
    if interval.seconds:
        seconds = int(value.timestamp()) // interval.seconds * interval.seconds
        return datetime.fromtimestamp(seconds, UTC)
    local = value.astimezone(ZoneInfo(tz))
    if interval.calendar == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
        return start.astimezone(UTC)
    day = datetime(local.year, local.month, local.day, tzinfo=ZoneInfo(tz))
    if interval.calendar == "week":
        day = datetime.combine((day - timedelta(days=day.weekday())).date(), day.timetz())
    elif interval.calendar == "month":
        day = day.replace(day=1)
    return day.astimezone(UTC)


def next_start(start: datetime, interval: Interval, tz: str) -> datetime:
    if interval.seconds:
        return start + timedelta(seconds=interval.seconds)
    if interval.calendar == "hour":
        return start + timedelta(hours=1)
    local = start.astimezone(ZoneInfo(tz))
    if interval.calendar == "day":
        step = local.date() + timedelta(days=1)
    elif interval.calendar == "week":
        step = local.date() + timedelta(days=7)
    else:
        step = (local.replace(day=28) + timedelta(days=4)).date().replace(day=1)
    return datetime(step.year, step.month, step.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def fill(
    found: dict[int, dict[str, Any]], query: AggQuery, empty: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every bucket from the first to the last (or the from/to bounds), empty ones included."""
    assert query.interval is not None
    where = query.where
    starts: Iterable[int] = found
    first = [datetime.fromtimestamp(k / 1000, UTC) for k in starts]
    if where.start:
        first.append(where.start)
    if where.end:
        first.append(where.end - timedelta(milliseconds=1))
    if not first:
        return []
    current = bucket_start(min(first), query.interval, query.tz)
    last = bucket_start(max(first), query.interval, query.tz)
    width = query.interval.seconds or _CALENDAR_SECONDS[query.interval.calendar or "day"]
    if (last - current).total_seconds() / width >= MAX_HISTOGRAM_BUCKETS:
        raise QueryError(
            "interval",
            f"more than {MAX_HISTOGRAM_BUCKETS} buckets: use a longer interval or "
            "a narrower from/to range",
        )
    out: list[dict[str, Any]] = []
    while current <= last:
        key = epoch_ms(current)
        bucket = found.get(key) or {**empty}
        out.append({"key": {"@timestamp": key}, **bucket})
        current = next_start(current, query.interval, query.tz)
    return out


def percent_key(p: float) -> str:
    return f"{p:g}"


def empty_bucket(query: AggQuery) -> dict[str, Any]:
    empty: dict[str, Any] = {"count": 0}
    if "unique_users" in query.metrics:
        empty["unique_users"] = 0
    if "avg_duration" in query.metrics:
        empty["avg_duration"] = None
    if "percentiles_duration" in query.metrics:
        empty["percentiles_duration"] = {percent_key(p): None for p in PERCENTS}
    return empty
