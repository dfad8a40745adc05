"""Analytics request parameters, read with the query API's own parsers and errors."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eventtrail.conf import get_config
from eventtrail.stores.base import bucket_start, next_start
from eventtrail.stores.query import (
    Interval,
    QueryError,
    flat_params,
    parse_bool,
    parse_date,
    parse_int,
    parse_interval,
    parse_tz,
)

COMMON = {"from", "to", "include_bots", "tz"}
MAX_BUCKETS = 1000  # time buckets one series may have


@dataclass(frozen=True)
class Params:
    """Everything an analytic may take; each endpoint says which of these it reads."""

    now: datetime
    start: datetime | None
    end: datetime | None
    include_bots: bool
    tz: str
    interval: Interval
    size: int
    days: int
    half_life: float
    community: str | None
    user: str | None
    article: str | None
    raw: tuple[tuple[str, str], ...]  # the request's parameters, for ETags


def parse(
    params: Mapping[str, Any], allowed: set[str], *, default_from: str | None = None,
    default_interval: str = "day", now: datetime | None = None, default_days: int | None = None,
) -> Params:
    """Unknown parameters are a 400, as in the query API, so typos never pass silently."""
    flat = flat_params(params)
    for name in flat:
        if name not in allowed | COMMON:
            known = ", ".join(sorted(allowed | COMMON))
            raise QueryError(name, f"unknown parameter; this endpoint takes {known}")
    moment = now or datetime.now(UTC)
    raw_from = flat.get("from") or default_from
    start = parse_date("from", raw_from, moment) if raw_from else None
    end = parse_date("to", flat["to"], moment) if flat.get("to") else None
    if start and end and start > end:
        raise QueryError("to", "is before from")
    include_bots = get_config()["INCLUDE_BOTS"]
    if flat.get("include_bots"):
        include_bots = parse_bool("include_bots", flat["include_bots"])
    interval = parse_interval(flat.get("interval") or default_interval)
    if interval.seconds and interval.seconds < 3600 and start is None:
        raise QueryError("interval", "intervals under an hour need a from date")
    tz = parse_tz(flat.get("tz"))
    if "interval" in allowed and start is not None:
        # A series too long to draw is refused, naming what the caller set to make it so.
        culprit = "interval" if flat.get("interval") else "to" if end and end > moment \
            else "from" if flat.get("from") else "interval"
        buckets(start, end or moment, interval, tz, culprit)
    config = get_config()
    size = parse_int("size", flat["size"], 1, 100) if flat.get("size") else 10
    days = default_days or config["TRENDING_DAYS"]
    if flat.get("days"):
        days = parse_int("days", flat["days"], 1, 90)
    half_life = float(config["TRENDING_HALF_LIFE_DAYS"])
    if flat.get("half_life"):
        half_life = float(parse_int("half_life", flat["half_life"], 1, 90))
    return Params(
        now=moment, start=start, end=end, include_bots=include_bots,
        tz=tz, interval=interval, size=size, days=days,
        half_life=half_life, community=flat.get("community") or None,
        user=flat.get("user") or None, article=flat.get("article") or None,
        raw=tuple(sorted(flat.items())),
    )


def buckets(first: datetime, end: datetime, interval: Interval, tz: str,
            param: str = "interval") -> list[datetime]:
    """The starts of the buckets from the one holding ``first`` to the one holding the moment
    before ``end``. More than ``MAX_BUCKETS`` is a 400 naming ``param``, as a series that long
    cannot be drawn (Prometheus and Elasticsearch cap theirs too), never a cut series."""
    current = bucket_start(first, interval, tz)
    last = bucket_start(end - timedelta(milliseconds=1), interval, tz)
    out: list[datetime] = []
    while current <= last:
        if len(out) == MAX_BUCKETS:
            hint = ""
            if interval.seconds:
                span = (last - bucket_start(first, interval, tz)).total_seconds()
                hint = f" (this period needs {-(-int(span) // (MAX_BUCKETS - 1) // 60)}m or more)"
            raise QueryError(param, f"{interval.label} buckets from {first.isoformat()} to "
                             f"{end.isoformat()} make more than {MAX_BUCKETS}: use a longer "
                             f"interval{hint} or a shorter period")
        out.append(current)
        current = next_start(current, interval, tz)
    return out


def period(label: str) -> str | None:
    """The page's period picker: 7d, 30d, 90d, 365d or all -> a ``from`` value; "7d" is seven
    UTC days, today included."""
    if label == "all":
        return None
    return f"now-{int(label[:-1]) - 1}d/d"


def day_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def days_ago(moment: datetime, days: int) -> datetime:
    return moment - timedelta(days=days)
