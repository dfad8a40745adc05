"""The embedded store: the query compiled to the Django ORM on the events alias."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache, wraps
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.db import DatabaseError, connections, transaction
from django.db.models import (
    Avg,
    BooleanField,
    CharField,
    Count,
    Expression,
    F,
    Func,
    IntegerField,
    Max,
    Min,
    Model,
    OrderBy,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT
from django.db.models.functions import Collate, Trunc
from django.utils.dateparse import parse_datetime

from eventtrail.conf import get_config
from eventtrail.models import (
    FiveMinuteActionRollup,
    FiveMinuteUserRollup,
    FiveMinuteVisitorRollup,
    QuarterHourActionRollup,
    QuarterHourUserRollup,
    QuarterHourVisitorRollup,
    RollupState,
    StoredEvent,
    TargetRollup,
    UserRollup,
)
from eventtrail.stores import fields as registry
from eventtrail.stores import query as api_query
from eventtrail.stores.base import (
    Buckets,
    Page,
    StoreUnavailable,
    Tally,
    bucket_start,
    empty_bucket,
    epoch_ms,
    fill,
    next_start,
    percent_key,
    percentile,
    project,
    users_per_bucket,
)
from eventtrail.stores.query import (
    PERCENTS,
    AggQuery,
    Filter,
    Interval,
    ListQuery,
    Term,
    TextQuery,
    Where,
)


class EpochBucket(Func):
    """Seconds since the epoch floored to a fixed interval, aligned on UTC."""

    output_field = IntegerField()

    def __init__(self, expression: Any, seconds: int) -> None:
        super().__init__(expression)
        self.seconds = int(seconds)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(CAST(strftime('%%s', {sql}) AS INTEGER) / {self.seconds} * {self.seconds})",
            params,
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        # DATE_BIN's integer arithmetic on microseconds (PostgreSQL 14, as Django 5.2 needs):
        # exact, and a third faster than flooring EXTRACT's numeric.
        return (
            f"EXTRACT(EPOCH FROM DATE_BIN(INTERVAL '{self.seconds} seconds', {sql}, "
            "TIMESTAMPTZ '1970-01-01 00:00:00+00'))::bigint",
            params,
        )


def _path(name: str) -> str:
    spec = registry.FIELDS[name]
    return spec.column if spec.column else "document__" + "__".join(spec.json_path)


def _filter(f: Filter) -> Q:
    path = _path(f.field)
    if f.lookup == "exists":
        return Q(**{f"{path}__isnull": not f.value})
    if f.lookup == "not":
        return ~Q(**{path: f.value}) | Q(**{f"{path}__isnull": True})
    if f.lookup == "exact":
        return Q(**{path: f.value})
    return Q(**{f"{path}__{f.lookup}": list(f.value) if f.lookup == "in" else f.value})


def _term(term: Term) -> Q:
    lookup = "istartswith" if term.prefix else "icontains"
    q = Q()
    for name in registry.TEXT_FIELDS:
        q |= Q(**{f"{_path(name)}__{lookup}": term.text})
    return q


def _text(text: TextQuery) -> Q:
    q = Q()
    for group in text.groups:
        alternatives = Q()
        for term in group:
            alternatives |= _term(term)
        q &= alternatives
    for term in text.excluded:
        # Absent fields do not contain the term; SQL's NOT over NULL would drop the row.
        lookup = "istartswith" if term.prefix else "icontains"
        for name in registry.TEXT_FIELDS:
            path = _path(name)
            q &= Q(**{f"{path}__isnull": True}) | ~Q(**{f"{path}__{lookup}": term.text})
    return q


def where_q(where: Where) -> Q:
    q = Q()
    for f in where.filters:
        q &= _filter(f)
    if where.start:
        q &= Q(timestamp__gte=where.start)
    if where.end:
        q &= Q(timestamp__lt=where.end)
    if where.text:
        q &= _text(where.text)
    if not where.include_bots:
        q &= Q(is_bot=False)
    if where.scope is not None:
        scope = Q(pk__in=[])
        if where.scope.user_id is not None:
            scope |= Q(user_id=where.scope.user_id)
        if where.scope.communities:
            scope |= Q(community_slug__in=list(where.scope.communities))
        q &= scope
    return q


def _after(keys: list[tuple[str, bool, bool]], values: list[Any]) -> Q:
    """Rows strictly after ``values`` in the order (column, descending, nulls_first)..."""
    if not keys:
        return Q(pk__in=[])
    (column, descending, nulls_first), value = keys[0], values[0]
    rest = _after(keys[1:], values[1:])
    if value is None:
        same = Q(**{f"{column}__isnull": True}) & rest
        return Q(**{f"{column}__isnull": False}) | same if nulls_first else same
    beyond = Q(**{f"{column}__lt" if descending else f"{column}__gt": value})
    q = beyond | (Q(**{column: value}) & rest)
    if not nulls_first:
        q |= Q(**{f"{column}__isnull": True})
    return q


def _nullable(name: str) -> bool:
    return bool(StoredEvent._meta.get_field(registry.FIELDS[name].column or "").null)


def _order(column: str, descending: bool, nulls_first: bool, nullable: bool) -> OrderBy:
    """Missing values placed as asked; a NOT NULL column gets a plain direction.

    PostgreSQL reads an index backwards only for the opposite of its NULLS placement, so a
    ``DESC NULLS LAST`` on ``timestamp`` could never use the ``(..., timestamp)`` indexes.
    """
    if not nullable:
        return OrderBy(F(column), descending=descending)
    if nulls_first:
        return OrderBy(F(column), descending=descending, nulls_first=True)
    return OrderBy(F(column), descending=descending, nulls_last=True)


def _decode(name: str, value: Any) -> Any:
    if value is not None and registry.FIELDS[name].kind == "date":
        return parse_datetime(value)
    return value


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


T = TypeVar("T")
CHUNK = 500  # values per IN list: well under SQLite's bound-parameter limit
MAX_PARAMS = 30000  # parameters of one statement: under SQLite's 32,766 and PostgreSQL's 65,535


def unavailable_on_error(method: Callable[..., T]) -> Callable[..., T]:
    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except DatabaseError as exc:
            raise StoreUnavailable(f"the event database is unavailable: {exc}") from exc

    return wrapper


def fixed_seconds(interval: Interval, tz: str) -> int | None:
    """The bucket width when buckets are whole multiples of epoch seconds: fixed intervals, and
    UTC hours and days, which integer arithmetic finds much faster than a per-row Trunc."""
    if interval.seconds:
        return interval.seconds
    if tz == "UTC" and interval.calendar in {"hour", "day"}:
        return 3600 if interval.calendar == "hour" else 86400
    return None


EPOCH_DAY = date(1970, 1, 1)


@lru_cache(maxsize=256)
def zone_offsets(tz: str, first_day: date, last_day: date) -> tuple[tuple[int, int], ...]:
    """The zone's UTC offsets from ``first_day`` to ``last_day``: ((from epoch second, offset
    seconds), ...), the first from the start. Found by sampling once a day and bisecting to the
    second where the offset changes (zones change at most twice a year, never twice a day)."""
    zone = ZoneInfo(tz)

    def offset(second: int) -> int:
        moment = datetime.fromtimestamp(second, UTC).astimezone(zone)
        return int(moment.utcoffset().total_seconds())  # type: ignore[union-attr]

    start = int(_day_start(first_day - timedelta(days=1)).timestamp())
    end = int(_day_start(last_day + timedelta(days=2)).timestamp())
    out = [(start, offset(start))]
    at = start
    while at < end:
        step = min(at + 86400, end)
        if offset(step) != out[-1][1]:
            low, high = at, step  # the offset changes in (low, high]
            while high - low > 1:
                middle = (low + high) // 2
                if offset(middle) == out[-1][1]:
                    low = middle
                else:
                    high = middle
            out.append((high, offset(high)))
        at = step
    return tuple(out)


class LocalBucket(Func):
    """SQLite: a row's calendar bucket in a time zone by integer arithmetic on its epoch second
    plus the zone's offset at that moment (a CASE over the transitions in range), where Django's
    Trunc calls a Python function per row. Keys: local hours or days since 1970-01-01, weeks
    (Monday first) since the week of 1969-12-29, or 'YYYY-MM' for months."""

    def __init__(self, expression: Any, calendar: str, offsets: tuple[tuple[int, int], ...]):
        super().__init__(expression, output_field=CharField() if calendar == "month"
                         else IntegerField())
        self.calendar, self.offsets = calendar, offsets

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        second = f"CAST(strftime('%%s', {sql}) AS INTEGER)"
        offset = str(self.offsets[-1][1])
        if len(self.offsets) > 1:
            branches = " ".join(f"WHEN {second} < {at} THEN {before}" for (_, before), (at, _)
                                in zip(self.offsets, self.offsets[1:], strict=False))
            offset = f"CASE {branches} ELSE {offset} END"
        local = f"({second} + {offset})"
        if self.calendar == "month":
            return f"strftime('%%Y-%%m', {local}, 'unixepoch')", params
        width = 3600 if self.calendar == "hour" else 86400
        number = f"(CASE WHEN {local} >= 0 THEN {local} / {width} " \
                 f"ELSE ({local} - {width - 1}) / {width} END)"
        if self.calendar == "week":
            number = f"(CASE WHEN {number} + 3 >= 0 THEN ({number} + 3) / 7 " \
                     f"ELSE ({number} + 3 - 6) / 7 END)"
        return number, params

    def to_moment(self, key: Any, zone: ZoneInfo) -> datetime:
        """The bucket's start, as Django's Trunc gives it: local wall time made aware."""
        if self.calendar == "month":
            year, month = str(key).split("-")
            return datetime(int(year), int(month), 1, tzinfo=zone)
        if self.calendar == "hour":
            return (datetime(1970, 1, 1) + timedelta(hours=int(key))).replace(tzinfo=zone)
        days = int(key) * 7 - 3 if self.calendar == "week" else int(key)
        return datetime.combine(EPOCH_DAY + timedelta(days=days), time(0), zone)

    def key_of(self, moment: datetime) -> Any:
        """The key of the bucket holding ``moment`` (a composite page's ``after``)."""
        local = moment.astimezone(UTC).timestamp()
        shift = self.offsets[0][1]
        for at, offset in self.offsets:
            if local >= at:
                shift = offset
        local += shift
        if self.calendar == "month":
            return datetime.fromtimestamp(local, UTC).strftime("%Y-%m")
        number = int(local // (3600 if self.calendar == "hour" else 86400))
        return (number + 3) // 7 if self.calendar == "week" else number


@dataclass(frozen=True)
class Bucketing:
    """How a query buckets time on this database: the SQL key and its conversions."""

    expression: Expression
    tz: str
    # Rows by the ten thousand share a thousand keys at most (a series' buckets): each key is
    # converted once.
    known: dict[Any, int] = field(default_factory=dict, compare=False, repr=False)

    def to_ms(self, key: Any) -> int:
        ms = self.known.get(key)
        if ms is None:
            if isinstance(self.expression, LocalBucket):
                ms = epoch_ms(self.expression.to_moment(key, ZoneInfo(self.tz)))
            else:
                ms = bucket_ms(key)
            self.known[key] = ms
        return ms

    def key_of(self, ms: int) -> Any:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        if isinstance(self.expression, LocalBucket):
            return self.expression.key_of(moment)
        if isinstance(self.expression, EpochBucket):
            return ms // 1000
        return moment


def time_bucket(interval: Interval, tz: str, vendor: str = "",
                days: tuple[date, date] | None = None, column: str = "timestamp") -> Bucketing:
    """The bucket of ``column`` (the events' timestamp, or a rollup row's start): fixed widths
    and UTC hours and days by epoch arithmetic; other calendar buckets on SQLite by
    ``LocalBucket`` over the zone's offsets from ``days[0]`` to ``days[1]``; on PostgreSQL by
    its own date_trunc in the zone."""
    seconds = fixed_seconds(interval, tz)
    if seconds:
        return Bucketing(EpochBucket(column, seconds), tz)
    calendar = interval.calendar or "day"
    if vendor == "sqlite" and days is not None:
        return Bucketing(LocalBucket(column, calendar, zone_offsets(tz, *days)), tz)
    return Bucketing(Trunc(column, calendar, tzinfo=ZoneInfo(tz)), tz)


def bucket_ms(value: Any) -> int:
    """A bucket key as epoch ms, whether the database gave a datetime or epoch seconds."""
    if isinstance(value, datetime):
        return epoch_ms(value)
    return int(value) * 1000


def _chunks(values: Sequence[T]) -> list[list[T]]:
    items = list(dict.fromkeys(values))
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]


# --- exact rollups ------------------------------------------------------------------------------
#
# Two tables count events per UTC day and grain (see models.UserRollup, TargetRollup), two per
# UTC quarter hour (QuarterHourActionRollup, QuarterHourUserRollup: charts in any zone). A query
# uses them only when the answer stays exact: filters on their columns only, time buckets made
# of whole units (UTC days for the daily ones; for the quarter-hour ones any bucket of whole
# quarter hours, which every zone's day and hour are today), and a period whose ends either fall
# on a unit's start or cut a unit where nothing lies beyond the cut (a period ending now, with
# nothing stamped later today, reads today's rollup: today so far), the cut pieces read raw.
# They are built once from StoredEvent (``ensure_rollups``), and from then on the database sink
# adds each batch it inserts in the same transaction, so they always equal the events table
# without a rebuild on read. Events written any other way, or deleted (retention), need
# ``reset_rollups``.

USER_GRAIN = ("action", "community_slug", "target_type", "user_id", "is_bot", "status_code")
USER_FIELDS = frozenset({"event.action", "eventtrail.community.slug", "eventtrail.target.type",
                         "user.id", "http.response.status_code"})
TARGET_FIELDS = USER_FIELDS | {"eventtrail.target.id", "eventtrail.browser.scroll_depth",
                                "eventtrail.video.id", "eventtrail.video.progress"}
QUARTER_ACTION_FIELDS = frozenset({"event.action", "eventtrail.community.slug",
                                   "eventtrail.target.type", "eventtrail.target.state",
                                   "http.response.status_code"})
QUARTER_USER_FIELDS = frozenset({"user.id", "eventtrail.community.slug"})
VISITOR_FIELDS = frozenset({"user.id"})
GRAINS: dict[type[Model], tuple[str, ...]] = {
    UserRollup: USER_GRAIN,
    TargetRollup: (*USER_GRAIN, "target_id", "scroll_depth", "video_id", "video_progress"),
    QuarterHourActionRollup: ("action", "community_slug", "target_type", "target_state",
                              "status_code", "is_bot"),
    QuarterHourUserRollup: ("user_id", "community_slug", "is_bot"),
}
QUARTER_HOUR = 900
FIVE_MINUTES = 300
GRAINS[QuarterHourVisitorRollup] = ("user_id", "is_bot")
FIVE_MINUTE: dict[type[Model], type[Model]] = {  # each quarter-hour rollup's five-minute twin
    QuarterHourActionRollup: FiveMinuteActionRollup, QuarterHourUserRollup: FiveMinuteUserRollup,
    QuarterHourVisitorRollup: FiveMinuteVisitorRollup}
# The rollups kept per time unit (their ``start``) rather than per UTC day, and the unit; a
# five-minute twin has its quarter-hour rollup's grain.
UNITS: dict[type[Model], int] = {}
for _quarter, _five in FIVE_MINUTE.items():
    GRAINS[_five] = GRAINS[_quarter]
    UNITS[_quarter], UNITS[_five] = QUARTER_HOUR, FIVE_MINUTES
# Buckets of whole UTC quarter hours: none is ever split (the plan for "who, when" questions).
QUARTERS = Interval(seconds=QUARTER_HOUR)
_FIELDS = {f.name: f for f in StoredEvent._meta.concrete_fields}  # the grains' columns
ROLLUP = "daily"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


Tables = tuple[tuple[frozenset[str], type[Model]], ...]  # (the fields it has, the rollup)
DAILY: Tables = ((USER_FIELDS, UserRollup), (TARGET_FIELDS, TargetRollup))
# The first that answers is read: site-wide "who" questions from the visitor rollup (a third of
# the user rollup's rows), a community's from the user rollup.
QUARTER_HOURS: Tables = ((QUARTER_ACTION_FIELDS, QuarterHourActionRollup),
                         (VISITOR_FIELDS, QuarterHourVisitorRollup),
                         (QUARTER_USER_FIELDS, QuarterHourUserRollup))


def rollup_model(where: Where, fields: Sequence[str] = (),
                 tables: Tables = DAILY) -> type[Model] | None:
    """The first of ``tables`` whose columns answer ``where`` (grouped by ``fields``), if any;
    whether its days or quarter hours hold ``where``'s period exactly is ``rollup_parts``' and
    ``quarter_plan``'s question."""
    if where.text or where.scope is not None:
        return None
    used = {f.field for f in where.filters} | set(fields)
    return next((model for have, model in tables if used <= have), None)


Span = tuple[date | None, date | None]


Piece = tuple[datetime, datetime]


def whole_units(alias: str, start: datetime | None, end: datetime | None,
                floor: Callable[[datetime], datetime],
                unit: timedelta) -> tuple[datetime | None, datetime | None, list[Piece]] | None:
    """A period [start, end) (UTC, either end open) as whole rollup units (days, quarter hours)
    [first, last), and the pieces at either end that cut a unit (read from the events), or None
    when both ends cut the same unit. A cut leaves no piece when nothing of its unit lies beyond
    it: an end just after the unit's last event (a period ending now), a start just before its
    first. One indexed look along ``timestamp`` per cut."""
    events = StoredEvent.objects.using(alias)
    first = floor(start) if start is not None else None
    last = floor(end) if end is not None else None
    pieces: list[Piece] = []
    if start is not None and first is not None and start != first \
            and events.filter(timestamp__gte=first, timestamp__lt=start).exists():
        first += unit  # events earlier in the start's unit: read the rest of it raw
        pieces.append((start, first if end is None else min(first, end)))
    if end is not None and last is not None and end != last:
        if events.filter(timestamp__gte=end, timestamp__lt=last + unit).exists():
            pieces.append((last if start is None else max(last, start), end))
        else:
            last += unit  # nothing later in the end's unit ("now"): its row holds it
    if first is not None and last is not None and first > last:
        return None  # a cut unit on both sides: one period of raw events
    return first, last, pieces


def _day_floor(moment: datetime) -> datetime:
    return _day_start(moment.astimezone(UTC).date())


def rollup_parts(alias: str, where: Where) -> tuple[Span, list[Where]] | None:
    """``where``'s period as whole UTC days for the rollups, [first, last), and the periods at
    either end that cut a day (raw events), or None when it lies within one cut day
    (``whole_units``)."""
    start = where.start.astimezone(UTC) if where.start is not None else None
    end = where.end.astimezone(UTC) if where.end is not None else None
    units = whole_units(alias, start, end, _day_floor, timedelta(days=1))
    if units is None:
        return None
    first, last, pieces = units
    edges = [replace(where, start=a, end=b) for a, b in pieces]
    return (first.date() if first else None, last.date() if last else None), edges


def rollup_days(interval: Interval | None, tz: str) -> bool:
    """Buckets made of whole UTC days: the rollups can fill them."""
    return interval is None or (tz == "UTC" and interval.calendar in {"day", "week", "month"})


def _time_column(model: type[Model]) -> str:
    return "start" if model in UNITS else "day"


def _rebuild_day(alias: str, day: date) -> None:
    start = _day_start(day)
    raw = StoredEvent.objects.using(alias).filter(timestamp__gte=start,
                                                  timestamp__lt=start + timedelta(days=1))
    for model in GRAINS:
        grain = GRAINS[model]
        extra: dict[str, Any] = {"name": Max("user_name")} if model is UserRollup else {}
        if model in UNITS:
            rows = (raw.annotate(at=EpochBucket("timestamp", UNITS[model])).values("at", *grain)
                    .annotate(n=Count("pk")).order_by())
        else:
            rows = raw.values(*grain).annotate(n=Count("pk"), **extra).order_by()
        made: list[Any] = []
        for r in rows:
            when = ({"start": datetime.fromtimestamp(int(r["at"]), UTC)}
                    if model in UNITS else {"day": day})
            made.append(model(events=r["n"], grain=grain_key([r[c] for c in grain]), **when,
                              **({"user_name": r["name"]} if extra else {}),
                              **{c: r[c] for c in grain}))
        model._default_manager.using(alias).bulk_create(made, batch_size=1000)


def lock_rollups(alias: str) -> RollupState:
    """Lock the rollups' state row for this transaction and return it: one writer at a time,
    a sink adding its batch or a rebuild. So the events a sink finds new before it inserts are
    exactly those it inserts (two sinks given the same event would otherwise both count it),
    and a rebuild never misses a batch committed while it reads. PostgreSQL: FOR UPDATE.
    SQLite has one writer at a time anyway: a write takes its lock at once, so the rows read
    next cannot change before the transaction ends."""
    manager = RollupState._default_manager.using(alias)
    manager.get_or_create(name=ROLLUP)
    if connections[alias].vendor == "postgresql":
        table = RollupState._meta.db_table
        return list(manager.raw(f"SELECT * FROM {table} WHERE name = %s FOR UPDATE",
                                [ROLLUP]))[0]
    manager.filter(name=ROLLUP).update(name=ROLLUP)
    return manager.get(name=ROLLUP)


def ensure_rollups(alias: str) -> None:
    """Build the rollups if they were never built (a new store, an upgrade, ``reset_rollups``).
    From then on the database sink adds each batch to them in the transaction that inserts it,
    so reading them costs nothing more than this one look at their state."""
    states = RollupState._default_manager.using(alias)
    if states.filter(name=ROLLUP, checked_to__isnull=False).exists():
        return
    with transaction.atomic(using=alias):
        state = lock_rollups(alias)
        if state.checked_to is not None:
            return  # another process built them while this one waited
        for model in GRAINS:
            model._default_manager.using(alias).all().delete()
        days = (StoredEvent.objects.using(alias).annotate(d=EpochBucket("timestamp", 86400))
                .values_list("d", flat=True).distinct().order_by())
        for seconds in sorted(set(days)):
            _rebuild_day(alias, datetime.fromtimestamp(int(seconds), UTC).date())
        state.checked_to = datetime.now(UTC)  # built at
        state.save(using=alias)


def grain_key(values: Sequence[Any]) -> str:
    """A rollup row's grain as one exact, indexable text: NULL stays apart from '' and 0."""
    return json.dumps(list(values), separators=(",", ":"), default=str)


def _grain_of(model: type[Model], row: StoredEvent) -> tuple[Any, ...]:
    """The row's grain in the rollup's column types, as a rebuild reads them back."""
    return tuple(_FIELDS[c].to_python(getattr(row, c)) for c in GRAINS[model])


def _upsert(alias: str, model: type[Model], counts: dict[tuple[Any, ...], int],
            names: dict[tuple[Any, ...], str] | None = None) -> None:
    """Add ``counts`` ({(day or quarter hour, *grain): n}) to a rollup table in a few statements:
    INSERT ... ON CONFLICT (day, grain) DO UPDATE SET events = events + n: a grain has one row,
    however its events arrive. ``names``: a grain's greatest user name, kept as the rebuild
    keeps it (the database's order)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    when = _time_column(model)
    adapt = (connection.ops.adapt_datetimefield_value if model in UNITS
             else connection.ops.adapt_datefield_value)
    columns = [when, "grain", *GRAINS[model], "events"]
    update = f"events = {table}.events + excluded.events"
    if names is not None:
        columns.append("user_name")
        update += (f", user_name = CASE WHEN excluded.user_name IS NOT NULL AND ("
                   f"{table}.user_name IS NULL OR excluded.user_name > {table}.user_name) "
                   f"THEN excluded.user_name ELSE {table}.user_name END")
    rows = []
    # In key order, as every writer (and the rebuild's reading) goes.
    for (day, *grain), n in sorted(counts.items(), key=lambda item: (item[0][0],
                                                                      grain_key(item[0][1:]))):
        row = [adapt(day), grain_key(grain), *grain, n]
        if names is not None:
            row.append(names.get((day, *grain)))
        rows.append(row)
    per = max(1, 900 // len(columns))  # bound parameters per statement, under SQLite's limit
    head = f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) VALUES "
    tail = f" ON CONFLICT ({when}, grain) DO UPDATE SET {update}"
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for i in range(0, len(rows), per):
            chunk = rows[i:i + per]
            cursor.execute(head + ", ".join([one] * len(chunk)) + tail,
                           [value for row in chunk for value in row])


def add_to_rollups(alias: str, rows: Sequence[StoredEvent]) -> None:
    """Count newly inserted events into the rollups, in the caller's transaction (which holds
    ``lock_rollups``)."""
    counts: dict[type[Model], dict[tuple[Any, ...], int]] = {m: defaultdict(int) for m in GRAINS}
    names: dict[tuple[Any, ...], str] = {}
    for row in rows:
        moment = row.timestamp.astimezone(UTC)
        starts = {unit: _floor_unit(moment, unit) for unit in (QUARTER_HOUR, FIVE_MINUTES)}
        for model, counted in counts.items():
            key = (starts[UNITS[model]] if model in UNITS else moment.date(),
                   *_grain_of(model, row))
            counted[key] += 1
            if model is UserRollup and row.user_name is not None and (
                    key not in names or row.user_name > names[key]):
                names[key] = row.user_name
    if rows:
        for model, counted in counts.items():
            _upsert(alias, model, counted, names if model is UserRollup else None)


def reset_rollups(alias: str) -> None:
    """Forget the rollups; the next query rebuilds them. Call it after deleting events
    (retention), which the ingest watermark cannot see."""
    with transaction.atomic(using=alias):
        for model in GRAINS:
            model._default_manager.using(alias).all().delete()
        RollupState._default_manager.using(alias).all().delete()


def _rollup_filters(where: Where) -> Q:
    """``where``'s filters and bot rule on a rollup: its columns carry StoredEvent's names."""
    q = Q() if where.include_bots else Q(is_bot=False)
    for f in where.filters:
        q &= _filter(f)
    return q


def rollup_q(where: Where, span: Span) -> Q:
    q = _rollup_filters(where)
    first, last = span
    if first is not None:
        q &= Q(day__gte=first)
    if last is not None:
        q &= Q(day__lt=last)
    return q


MAX_SPLIT = 1000  # quarter hours (and five minutes) cut by bucket starts, at most
WINDOWS_PER_QUERY = 100  # windows OR-ed in one query, far under SQLite's expression depth
# Beyond one in four of the period's five minutes split (read event by event), a scan of the
# period's events costs less than the rollups and those events: 7m buckets split four in seven,
# 1m ones all; 5m, 20m and 50m ones none, an old zone offset's days one a day.
MAX_SPLIT_SHARE = 0.25


def _floor_unit(moment: datetime, unit: int) -> datetime:
    """The start of the UTC quarter hour or five minutes (``unit`` seconds, dividing an hour)
    holding ``moment``."""
    moment = moment.astimezone(UTC)
    minutes = unit // 60
    return moment.replace(minute=moment.minute - moment.minute % minutes, second=0,
                          microsecond=0)


def _floor_quarter(moment: datetime) -> datetime:
    return _floor_unit(moment, QUARTER_HOUR)


@dataclass(frozen=True)
class QuarterPlan:
    """A period as whole UTC quarter hours [first, last) for a quarter-hour rollup, less the
    ``split`` ones a bucket starts inside (fixed buckets that are not whole quarter hours, such
    as 50m or 5m, and zones' old offsets, such as local mean time). Those are read from the
    five-minute rollup, less the ``split_fives`` a bucket starts inside (a 7m bucket, an old
    offset). The ``windows`` are read from the events table: the split five minutes and the cut
    quarter hours at either end."""

    first: datetime
    last: datetime
    split: frozenset[datetime]
    split_fives: frozenset[datetime]
    windows: tuple[tuple[datetime, datetime], ...]

    def raw(self, qs: QuerySet[Any]) -> list[QuerySet[Any]]:
        """``qs`` (StoredEvent's) within the windows (disjoint: the answers add up), a query per
        ``WINDOWS_PER_QUERY``. Written as SQL, without the period's bounds (the windows lie in
        it): SQLite then looks each window up along the timestamp index, where with the bounds
        it scans the period and tests every row against every window; and a thousand ORM
        lookups cost more than the database spends reading their rows."""
        connection = connections[qs.db]
        column = f"{connection.ops.quote_name(StoredEvent._meta.db_table)}." \
                 f"{connection.ops.quote_name('timestamp')}"
        adapt = connection.ops.adapt_datetimefield_value
        out = []
        for i in range(0, len(self.windows), WINDOWS_PER_QUERY):
            chunk = self.windows[i:i + WINDOWS_PER_QUERY]
            sql = " OR ".join([f"({column} >= %s AND {column} < %s)"] * len(chunk))
            params = [adapt(moment) for window in chunk for moment in window]
            out.append(qs.filter(RawSQL(f"({sql})", params, output_field=BooleanField())))
        return out

    def fives(self, qs: QuerySet[Any]) -> list[QuerySet[Any]]:
        """``qs`` (a five-minute rollup's) within the split quarter hours, less the split five
        minutes: its rows by their starts, ``CHUNK`` to a query (an IN list: PostgreSQL reads
        them in a third of the time it takes over as many OR-ed ranges)."""
        five = timedelta(seconds=FIVE_MINUTES)
        starts = [at + five * i for at in sorted(self.split)
                  for i in range(QUARTER_HOUR // FIVE_MINUTES)]
        return [qs.filter(start__in=chunk)
                for chunk in _chunks([at for at in starts if at not in self.split_fives])]


def _on_quarters(interval: Interval, tz: str, first: datetime, last: datetime) -> bool:
    """Whether every bucket from ``first`` to ``last`` starts on a UTC quarter hour: fixed
    buckets (whole quarter hours from the epoch), and calendar ones in a zone whose offsets, and
    the moments they change, all fall on quarter hours then (every zone's today)."""
    if interval.seconds:
        return interval.seconds % QUARTER_HOUR == 0
    offsets = zone_offsets(tz, first.date(), last.date())
    return all(offset % QUARTER_HOUR == 0 for _, offset in offsets) \
        and all(at % QUARTER_HOUR == 0 for at, _ in offsets[1:])


def quarter_plan(alias: str, where: Where, interval: Interval, tz: str) -> QuarterPlan | None:
    """How a quarter-hour rollup answers ``where`` bucketed by ``interval`` in ``tz`` exactly,
    or None (both ends cut one quarter hour, too many split quarter hours or five minutes, too
    large a share of split five minutes, no events)."""
    events = StoredEvent.objects.using(alias)
    quarter = timedelta(seconds=QUARTER_HOUR)
    start = where.start.astimezone(UTC) if where.start is not None else None
    end = where.end.astimezone(UTC) if where.end is not None else None
    if start is None:
        oldest = events.order_by("timestamp").values_list("timestamp", flat=True).first()
        if oldest is None:
            return None
        start = _floor_quarter(oldest)
    if end is None:
        newest = events.order_by("-timestamp").values_list("timestamp", flat=True).first()
        if newest is None:
            return None
        end = _floor_quarter(newest) + quarter
    if start >= end:
        return None
    units = whole_units(alias, start, end, _floor_quarter, quarter)
    if units is None:
        return None
    first, last, pieces = units
    assert first is not None and last is not None
    split: set[datetime] = set()
    split_fives: set[datetime] = set()
    bucket = last if _on_quarters(interval, tz, first, last) else bucket_start(first, interval, tz)
    while bucket < last:
        if bucket > first and bucket != _floor_quarter(bucket):
            split.add(_floor_quarter(bucket))
            if bucket != _floor_unit(bucket, FIVE_MINUTES):
                split_fives.add(_floor_unit(bucket, FIVE_MINUTES))
            if len(split) > MAX_SPLIT or len(split_fives) > MAX_SPLIT:
                return None
        bucket = next_start(bucket, interval, tz)
    if len(split_fives) > MAX_SPLIT_SHARE * (last - first).total_seconds() / FIVE_MINUTES:
        return None
    five = timedelta(seconds=FIVE_MINUTES)
    windows = [*pieces, *((at, at + five) for at in sorted(split_fives))]
    return QuarterPlan(first, last, frozenset(split), frozenset(split_fives), tuple(windows))


def _pairs_of(parts: list[tuple[QuerySet[Any], Bucketing]]) -> set[tuple[str, int]]:
    out: set[tuple[str, int]] = set()
    for rows, bucketing in parts:
        out.update((str(user), bucketing.to_ms(t)) for t, user in rows.distinct())
    return out


class DatabaseStore:
    """Both endpoints on the ``StoredEvent`` table; sorting and grouping use indexed columns."""

    name = "database"

    def __init__(self, alias: str | None = None, *, rollups: bool = True) -> None:
        self.alias = alias or get_config()["DATABASE_ALIAS"]
        self.rollups = rollups  # False: every answer from the events table (the exactness test)
        self.rollup_reads = 0  # answers read from the rollups

    def queryset(self, where: Where) -> QuerySet[StoredEvent]:
        return StoredEvent.objects.using(self.alias).filter(where_q(where))

    def search(self, query: ListQuery) -> Page:
        try:
            return self._search(query)
        except DatabaseError as exc:
            raise StoreUnavailable(f"the event database is unavailable: {exc}") from exc

    def _search(self, query: ListQuery) -> Page:
        columns = [f"s{i}" for i in range(len(query.sort))]
        qs = self.queryset(query.where).annotate(
            **{c: self._key(k.field) for c, k in zip(columns, query.sort, strict=True)}
        )
        reverse = bool(query.cursor and query.cursor.reverse)
        # Missing values sort last, as Elasticsearch puts them; a reversed read flips both.
        keys = [
            (c, k.descending != reverse, reverse) for c, k in zip(columns, query.sort, strict=True)
        ]
        nullable = [_nullable(k.field) for k in query.sort]
        order = [_order(c, d, nf, n) for (c, d, nf), n in zip(keys, nullable, strict=True)]
        total = None
        capped = False
        if query.page is not None:
            start = (query.page - 1) * query.page_size
            rows = list(
                qs.order_by(*order).values_list("document", *columns)[
                    start : start + query.page_size + 1
                ]
            )
            counted = qs[: api_query.MAX_WINDOW + 1].count()
            total, capped = min(counted, api_query.MAX_WINDOW), counted > api_query.MAX_WINDOW
        else:
            if query.cursor is not None:
                values = [
                    _decode(k.field, v)
                    for k, v in zip(query.sort, query.cursor.values, strict=True)
                ]
                qs = qs.filter(_after(keys, values))
            rows = list(
                qs.order_by(*order).values_list("document", *columns)[: query.page_size + 1]
            )
        more = len(rows) > query.page_size
        rows = rows[: query.page_size]
        if reverse:
            rows.reverse()
        return Page(
            hits=[project(row[0], query.fields) for row in rows],
            sort_values=[[_encode(v) for v in row[1:]] for row in rows],
            more=more,
            total=total,
            capped=capped,
        )

    def aggregate(self, query: AggQuery) -> Buckets:
        try:
            return self._aggregate(query)
        except DatabaseError as exc:
            raise StoreUnavailable(f"the event database is unavailable: {exc}") from exc

    def _key(self, name: str) -> Any:
        """A sort or group key; strings compare by code point, as Elasticsearch's keywords do."""
        spec = registry.FIELDS[name]
        expression = F(spec.column or "")
        if spec.kind == "keyword" and connections[self.alias].vendor == "postgresql":
            return Collate(expression, "C")
        return expression

    def _tally_key(self, name: str) -> Any:
        """``_key``, and for a field inside the document its JSON value, keywords as text, so
        ties between keys order as on Elasticsearch (code points, numbers as numbers)."""
        spec = registry.FIELDS[name]
        if spec.column:
            return self._key(name)
        path = _path(name)
        if spec.kind != "keyword":
            return F(path)
        if connections[self.alias].vendor == "postgresql":
            return Collate(KT(path), "C")
        return KT(path)

    def _metrics(self, query: AggQuery) -> dict[str, Any]:
        metrics: dict[str, Any] = {"count": Count("pk")}
        if "unique_users" in query.metrics:
            metrics["unique_users"] = Count("user_id", distinct=True)
        if "avg_duration" in query.metrics:
            metrics["avg_duration"] = Avg("duration")
        return metrics

    def _bucketing(self, where: Where, interval: Interval, tz: str,
                   column: str = "timestamp") -> Bucketing:
        vendor = connections[self.alias].vendor
        days = None
        if vendor == "sqlite" and not fixed_seconds(interval, tz):
            days = self._days(where)
        return time_bucket(interval, tz, vendor, days, column)

    def _days(self, where: Where) -> tuple[date, date]:
        """The UTC days the rows of ``where`` can fall on: its period, or the events' own."""
        first, last = where.start, where.end
        events = StoredEvent.objects.using(self.alias)
        if first is None:
            first = events.order_by("timestamp").values_list("timestamp", flat=True).first()
        if last is None:
            last = events.order_by("-timestamp").values_list("timestamp", flat=True).first()
        today = datetime.now(UTC)
        return ((first or today).astimezone(UTC).date(), (last or today).astimezone(UTC).date())

    def _aggregate(self, query: AggQuery) -> Buckets:
        if query.interval and not query.group_by and not query.composite \
                and query.metrics == ("count",):
            # A plain histogram of events is the analytics' series (``counts``): read from the
            # rollups where they are exact. A scan of every event otherwise: at 1M events on
            # SQLite, 0.6 s by UTC day, 0.9-1.2 s by week, month or in another zone.
            series = self.counts(query.where, None, query.interval, query.tz)
            return Buckets(fill({t: {"count": n} for (_, t), n in series.items()}, query,
                                empty_bucket(query)))
        qs = self.queryset(query.where)
        columns = [registry.FIELDS[n].column or "" for n in query.group_by]
        for column in columns:
            qs = qs.filter(**{f"{column}__isnull": False})
        annotations: dict[str, Any] = {f"g{i}": self._key(n) for i, n in enumerate(query.group_by)}
        bucketing = None
        if query.interval:
            bucketing = self._bucketing(query.where, query.interval, query.tz)
            annotations["t"] = bucketing.expression
        key_names = list(annotations)
        grouped = qs.annotate(**annotations).values(*key_names)
        metrics = self._metrics(query)

        def shape(row: dict[str, Any]) -> dict[str, Any]:
            bucket: dict[str, Any] = {"count": row["count"]}
            if "unique_users" in metrics:
                bucket["unique_users"] = row["unique_users"]
            if "avg_duration" in metrics:
                avg = row["avg_duration"]
                bucket["avg_duration"] = None if avg is None else float(avg)
            return bucket

        def key(row: dict[str, Any]) -> dict[str, Any]:
            out = {n: row[f"g{i}"] for i, n in enumerate(query.group_by)}
            if bucketing is not None:
                out["@timestamp"] = bucketing.to_ms(row["t"])
            return out

        if query.composite:
            page = grouped
            if query.after is not None:
                after = list(query.after)
                if bucketing is not None and isinstance(after[-1], int):
                    after[-1] = bucketing.key_of(after[-1])
                page = page.filter(_after([(k, False, False) for k in key_names], after))
            rows = list(page.annotate(**metrics).order_by(*key_names)[: query.size + 1])
            more = len(rows) > query.size
            rows = rows[: query.size]
            buckets = [{"key": key(r), **shape(r)} for r in rows]
            self._percentiles(qs, query, annotations, buckets, bucketing)
            next_after = list(buckets[-1]["key"].values()) if more and buckets else None
            return Buckets(buckets, next_after)
        if not query.group_by:
            rows = list(grouped.annotate(**metrics).order_by("t"))
            buckets = [{"key": key(r), **shape(r)} for r in rows]
            self._percentiles(qs, query, annotations, buckets, bucketing)
            found = {
                b["key"]["@timestamp"]: {k: v for k, v in b.items() if k != "key"} for b in buckets
            }
            empty = empty_bucket(query)
            return Buckets(fill(found, query, empty))
        first = list(
            qs.annotate(g0=annotations["g0"])
            .values("g0")
            .annotate(count=Count("pk"))
            .order_by("-count", "g0")[: query.size]
        )
        parents = [r["g0"] for r in first]
        # One grouped query for the chosen parents; each keeps its top children by count, key.
        rows = list(grouped.filter(g0__in=parents).annotate(**metrics))
        children: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            children[row["g0"]].append(row)
        buckets = []
        for parent in parents:
            kids = children[parent]
            if len(columns) == 2:
                kids = sorted(kids, key=lambda r: (-r["count"], r["g1"]))[: query.size]
            buckets.extend({"key": key(r), **shape(r)} for r in kids)
        self._percentiles(qs, query, annotations, buckets, bucketing)
        return Buckets(buckets)

    def _percentiles(
        self,
        qs: QuerySet[StoredEvent],
        query: AggQuery,
        annotations: dict[str, Any],
        buckets: list[dict[str, Any]],
        bucketing: Bucketing | None,
    ) -> None:
        """Exact percentiles, computed here: SQLite has no percentile function."""
        if "percentiles_duration" not in query.metrics or not buckets:
            return
        names = list(annotations)
        values: dict[tuple[Any, ...], list[float]] = defaultdict(list)
        rows = (
            qs.filter(duration__isnull=False)
            .annotate(**annotations)
            .values_list(*names, "duration")
        )
        wanted = {self._bucket_id(b["key"], query) for b in buckets}
        for row in rows.iterator():
            ident = tuple(row[:-1])
            if bucketing is not None:
                ident = (*ident[:-1], bucketing.to_ms(ident[-1]))
            if ident in wanted:
                values[ident].append(row[-1])
        for bucket in buckets:
            sample = sorted(values.get(self._bucket_id(bucket["key"], query), []))
            bucket["percentiles_duration"] = {
                percent_key(p): percentile(sample, p) for p in PERCENTS
            }

    def _bucket_id(self, key: dict[str, Any], query: AggQuery) -> tuple[Any, ...]:
        ident = [key[n] for n in query.group_by]
        if query.interval:
            ident.append(key["@timestamp"])
        return tuple(ident)

    # --- analytics primitives ------------------------------------------------------------------

    def _rollup(self, where: Where, *fields: str, model: type[Model] | None = None,
                interval: Interval | None = None, tz: str = "UTC") -> QuerySet[Any] | None:
        """The up-to-date rollup rows for ``where``, or None when only raw events are exact."""
        chosen = rollup_model(where, fields) if self.rollups else None
        if chosen is None or (model is not None and chosen is not model) \
                or not rollup_days(interval, tz):
            return None
        ensure_rollups(self.alias)
        parts = rollup_parts(self.alias, where)
        if parts is None or parts[1]:
            return None
        self.rollup_reads += 1
        return chosen._default_manager.using(self.alias).filter(rollup_q(where, parts[0]))

    def _quarters(self, where: Where, fields: Sequence[str], interval: Interval,
                  tz: str) -> tuple[list[QuerySet[Any]], QuarterPlan] | None:
        """The rollup rows for ``where``'s whole quarter hours and whole five minutes, each
        lying whole in one bucket (the quarter-hour rollup's query, then the five-minute
        rollup's in the split quarter hours), and the plan of what is read raw; or None when
        only raw events are exact (or no quarter-hour rollup has the columns)."""
        model = rollup_model(where, fields, QUARTER_HOURS) if self.rollups else None
        if model is None:
            return None
        ensure_rollups(self.alias)
        plan = quarter_plan(self.alias, where, interval, tz)
        if plan is None:
            return None
        self.rollup_reads += 1
        rows = model._default_manager.using(self.alias).filter(
            _rollup_filters(where), start__gte=plan.first, start__lt=plan.last)
        if plan.split:
            rows = rows.exclude(start__in=sorted(plan.split))
        fives = FIVE_MINUTE[model]._default_manager.using(self.alias).filter(
            _rollup_filters(where))
        return [rows, *plan.fives(fives)], plan

    def _people_in_parts(self, where: Where) -> set[str] | None:
        """Distinct users of ``where`` from the whole days' rollup and the cut days (``_users``),
        or None when the plain rollup query answers it in SQL (no cut days) or none serves."""
        model = rollup_model(where, ["user.id"]) if self.rollups else None
        if model is None:
            return None
        ensure_rollups(self.alias)
        parts = rollup_parts(self.alias, where)
        if parts is None or not parts[1]:
            return None
        self.rollup_reads += 1
        people = set(model._default_manager.using(self.alias).filter(
            rollup_q(where, parts[0]), user_id__isnull=False).values_list("user_id", flat=True)
            .distinct().order_by())
        for edge in parts[1]:
            people |= self._users(edge)
        return {str(u) for u in people}

    def _users(self, where: Where) -> set[str]:
        """Distinct users of a period within a day or so (a rolling window's cut day): the
        quarter-hour user rollup's whole quarter hours and the events of the cut ones, or the
        events."""
        people: set[str] = set()
        plan = None
        quarters = self._quarters(where, ["user.id"], QUARTERS, "UTC")
        if quarters is not None:
            parts, plan = quarters
            for rows in parts:
                people.update(rows.filter(user_id__isnull=False)
                              .values_list("user_id", flat=True).distinct().order_by())
        for qs in self._events_of(where, plan):
            people.update(str(u) for u in qs.filter(user_id__isnull=False)
                          .values_list("user_id", flat=True).distinct().order_by())
        return people

    def _events_of(self, where: Where, plan: QuarterPlan | None) -> list[QuerySet[Any]]:
        """``where``'s events; with a plan, only those in its windows (``QuarterPlan.raw``:
        without the period's own bounds)."""
        if plan is None:
            return [self.queryset(where)]
        return plan.raw(self.queryset(replace(where, start=None, end=None)))

    @unavailable_on_error
    def tally(
        self, where: Where, field: str, *, keys: Sequence[str] | None = None, size: int = 10
    ) -> list[Tally]:
        column = _path(field)
        rolled = self._rollup(where, field)
        qs: QuerySet[Any] = rolled if rolled is not None else self.queryset(where)
        events = Sum("events") if rolled is not None else Count("pk")
        grouped = qs.filter(**{f"{column}__isnull": False}).values(column).annotate(
            n=events, users=Count("user_id", distinct=True))
        rows: list[dict[str, Any]] = []
        if keys is None:
            rows = list(grouped.order_by("-n", self._tally_key(field).asc())[:size])
        else:
            for chunk in _chunks(keys):
                rows.extend(grouped.filter(**{f"{column}__in": chunk}).order_by())
            rows.sort(key=lambda r: (-r["n"], r[column]))
        return [Tally(str(r[column]), int(r["n"]), int(r["users"])) for r in rows]

    @unavailable_on_error
    def daily_tally(
        self, where: Where, field: str, keys: Sequence[str]
    ) -> dict[str, dict[int, tuple[int, int]]]:
        column = _path(field)
        out: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
        rolled = self._rollup(where, field)
        for chunk in _chunks(keys):
            if rolled is not None:
                rows = (rolled.filter(**{f"{column}__in": chunk}).values(column, "day")
                        .annotate(n=Sum("events"), users=Count("user_id", distinct=True))
                        .order_by())
                for r in rows:
                    out[str(r[column])][epoch_ms(_day_start(r["day"]))] = (r["n"], r["users"])
                continue
            raw = (
                self.queryset(where).filter(**{f"{column}__in": chunk})
                .annotate(day=EpochBucket("timestamp", 86400)).values(column, "day")
                .annotate(n=Count("pk"), users=Count("user_id", distinct=True)).order_by()
            )
            for r in raw:
                out[str(r[column])][bucket_ms(r["day"])] = (r["n"], r["users"])
        return dict(out)

    @unavailable_on_error
    def split_tally(
        self, where: Where, field: str, keys: Sequence[str], by: str, values: Sequence[Any]
    ) -> dict[str, dict[str, int]]:
        column, split = _path(field), _path(by)
        out: dict[str, dict[str, int]] = defaultdict(dict)
        rolled = self._rollup(where, field, by)
        qs: QuerySet[Any] = rolled if rolled is not None else self.queryset(where)
        events = Sum("events") if rolled is not None else Count("pk")
        for chunk in _chunks(keys):
            rows = (qs.filter(**{f"{column}__in": chunk, f"{split}__in": list(values)})
                    .values_list(column, split).annotate(n=events).order_by())
            for key, value, n in rows:
                out[str(key)][str(value)] = int(n)
        return dict(out)

    def _people(self, where: Where) -> QuerySet[Any]:
        rolled = self._rollup(where, "user.id")
        qs: QuerySet[Any] = rolled if rolled is not None else self.queryset(where)
        return qs.filter(user_id__isnull=False)

    @unavailable_on_error
    def users(self, where: Where, *, limit: int) -> list[str]:
        people = self._people_in_parts(where)
        if people is not None:
            return sorted(people)[:limit]  # code point order, as the key below sorts
        ids = (self._people(where).annotate(k=self._key("user.id")).values_list("k", flat=True)
               .distinct().order_by("k")[:limit])
        return [str(u) for u in ids]

    @unavailable_on_error
    def count_users(self, where: Where) -> int:
        people = self._people_in_parts(where)
        if people is not None:
            return len(people)
        result = self._people(where).aggregate(n=Count("user_id", distinct=True))
        return int(result["n"] or 0)

    @unavailable_on_error
    def first_seen(self, where: Where, users: Sequence[str]) -> dict[str, datetime]:
        """Each user's first event. A rollup finds the day (or quarter hour) it falls in; the
        events of that span give the moment, one query per distinct span, along the timestamp
        index."""
        out: dict[str, datetime] = {}
        qs = self.queryset(where)
        quarters = self._quarters(where, ["user.id"], QUARTERS, "UTC")
        rolled = None if quarters is not None else self._rollup(where, "user.id")
        for chunk in _chunks(users):
            if quarters is None and rolled is None:
                rows = (qs.filter(user_id__in=chunk).values("user_id")
                        .annotate(first=Min("timestamp")).order_by())
                out.update({str(r["user_id"]): r["first"] for r in rows})
                continue
            spans: dict[tuple[datetime, datetime], list[str]] = defaultdict(list)
            if quarters is not None:
                (rows, *fives), plan = quarters
                assert not fives  # quarter-hour buckets split no quarter hour
                for user, at in (rows.filter(user_id__in=chunk).values_list("user_id")
                                 .annotate(at=Min("start")).order_by()):
                    spans[(at, at + timedelta(seconds=QUARTER_HOUR))].append(user)
                for window in plan.windows:  # cut quarters: any user may have begun there
                    spans[window].extend(chunk)
            else:
                assert rolled is not None
                for user, day in (rolled.filter(user_id__in=chunk).values_list("user_id")
                                  .annotate(at=Min("day")).order_by()):
                    spans[(_day_start(day), _day_start(day) + timedelta(days=1))].append(user)
            for (start, end), group in spans.items():
                for ids in _chunks(group):
                    found = (qs.filter(user_id__in=ids, timestamp__gte=start, timestamp__lt=end)
                             .values_list("user_id").annotate(at=Min("timestamp")).order_by())
                    for user_id, at in found:
                        user = str(user_id)
                        if user not in out or at < out[user]:
                            out[user] = at
        return out

    def _day_pairs(self, rolled: QuerySet[Any], interval: Interval,
                   tz: str) -> set[tuple[str, int]]:
        """The active pairs from a daily rollup's rows (each UTC day whole in one bucket)."""
        days = rolled.filter(user_id__isnull=False).values_list("user_id", "day").distinct()
        starts: dict[date, int] = {}
        out: set[tuple[str, int]] = set()
        for user, day in days.order_by():
            if day not in starts:
                starts[day] = epoch_ms(bucket_start(_day_start(day), interval, tz))
            out.add((str(user), starts[day]))
        return out

    def _pair_parts(self, where: Where, interval: Interval,
                    tz: str) -> list[tuple[QuerySet[Any], Bucketing]]:
        """Queries of (bucket key ``t``, ``user_id``) rows, not distinct, that together hold
        every active pair: the quarter-hour rollup's rows and its five-minute twin's (each
        row's unit whole in one bucket: the database buckets its start), then the events
        outside them. Time first: SQLite then reads along the covering time index
        (et_ts_covering)."""
        plan = None
        parts: list[tuple[QuerySet[Any], Bucketing]] = []
        quarters = self._quarters(where, ["user.id"], interval, tz)
        if quarters is not None:
            rows, plan = quarters
            bucketing = self._bucketing(where, interval, tz, "start")
            parts += [(r.filter(user_id__isnull=False).annotate(t=bucketing.expression)
                       .values_list("t", "user_id").order_by(), bucketing) for r in rows]
        bucketing = self._bucketing(where, interval, tz)
        parts += [(qs.filter(user_id__isnull=False).annotate(t=bucketing.expression)
                   .values_list("t", "user_id").order_by(), bucketing)
                  for qs in self._events_of(where, plan)]
        return parts

    @unavailable_on_error
    def active_pairs(self, where: Where, interval: Interval, tz: str) -> set[tuple[str, int]]:
        rolled = self._rollup(where, "user.id", model=UserRollup, interval=interval, tz=tz)
        if rolled is not None:
            return self._day_pairs(rolled, interval, tz)
        return _pairs_of(self._pair_parts(where, interval, tz))

    @unavailable_on_error
    def user_counts(self, where: Where, interval: Interval, tz: str) -> dict[int, int]:
        """Users per bucket counted by the database: ``COUNT(DISTINCT user_id)`` over the
        union of the pair queries (a user can be in a bucket's quarter hours and in its raw
        minutes both), a row per bucket where the pairs are tens of thousands."""
        rolled = self._rollup(where, "user.id", model=UserRollup, interval=interval, tz=tz)
        if rolled is not None:
            return users_per_bucket(self._day_pairs(rolled, interval, tz))
        parts = self._pair_parts(where, interval, tz)
        compilers = [rows.query.get_compiler(using=self.alias) for rows, _ in parts]
        selects: list[str] = []
        params: list[Any] = []
        for compiler in compilers:
            sql, values = compiler.as_sql()
            selects.append(sql)
            params.extend(values)
        if len(params) > MAX_PARAMS:
            return users_per_bucket(_pairs_of(parts))
        # The first SELECT names the union's columns (t, user_id); its converters read t as
        # the ORM would (PostgreSQL's local time truncated in a zone, made aware in it).
        first = compilers[0]
        t = next(i for i, (_, _, alias) in enumerate(first.select) if alias == "t")
        converters = first.get_converters([first.select[t][0]])  # t is the union's column 0
        sql = (f"SELECT t, COUNT(DISTINCT user_id) FROM ({' UNION ALL '.join(selects)}) "
               "AS parts GROUP BY t")
        with connections[self.alias].cursor() as cursor:
            cursor.execute(sql, params)
            found = first.apply_converters(cursor.fetchall(), converters)
            return {parts[0][1].to_ms(key): int(n) for key, n in found}

    @unavailable_on_error
    def counts(self, where: Where, field: str | None, interval: Interval,
               tz: str) -> dict[tuple[str | None, int], int]:
        column = _path(field) if field else None
        names = [column] if column else []
        rolled = self._rollup(where, *([field] if field else []), interval=interval, tz=tz)
        out: dict[tuple[str | None, int], int] = defaultdict(int)
        if rolled is not None:
            if column:
                rolled = rolled.filter(**{f"{column}__isnull": False})
            starts: dict[date, int] = {}
            for r in rolled.values(*names, "day").annotate(n=Sum("events")).order_by():
                day = r["day"]
                if day not in starts:
                    starts[day] = epoch_ms(bucket_start(_day_start(day), interval, tz))
                key = str(r[column]) if column else None
                out[(key, starts[day])] += int(r["n"])
            return dict(out)
        plan = None
        quarters = self._quarters(where, [field] if field else [], interval, tz)
        if quarters is not None:
            parts, plan = quarters
            bucketing = self._bucketing(where, interval, tz, "start")
            for rows in parts:
                if column:
                    rows = rows.filter(**{f"{column}__isnull": False})
                for r in (rows.annotate(t=bucketing.expression).values(*names, "t")
                          .annotate(n=Sum("events")).order_by()):
                    key = str(r[column]) if column else None
                    out[(key, bucketing.to_ms(r["t"]))] += int(r["n"])
        bucketing = self._bucketing(where, interval, tz)
        for part in self._events_of(where, plan):
            # (A filter on a column that is never null would only mislead SQLite's choice of
            # index.)
            if column and (column not in _FIELDS or _FIELDS[column].null):
                part = part.filter(**{f"{column}__isnull": False})
            grouped: QuerySet[Any] = part.annotate(t=bucketing.expression)
            name = column
            if column in _FIELDS:
                # Grouped by time first (both as annotations: Django groups plain columns
                # first), so SQLite reads along the covering time index (et_ts_covering) rather
                # than walking the column's own index to save a sort.
                grouped, name = grouped.annotate(k=F(column)).values("t", "k"), "k"
            else:  # no field, or one inside the document
                grouped = grouped.values("t", *names)
            for r in grouped.annotate(n=Count("pk")).order_by():
                out[(str(r[name]) if column else None, bucketing.to_ms(r["t"]))] += int(r["n"])
        return dict(out)

    @unavailable_on_error
    def latest_states(self, where: Where, targets: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in _chunks(targets):
            rows = (self.queryset(where).filter(target_id__in=chunk, target_state__isnull=False)
                    .order_by("target_id", "timestamp", "id")
                    .values_list("target_id", "target_state"))
            out.update({str(t): str(s) for t, s in rows})  # later rows win: the newest state
        return out

    @unavailable_on_error
    def top_users(self, where: Where, size: int) -> list[tuple[str, str | None, int]]:
        rolled = self._rollup(where, "user.id", model=UserRollup)
        qs: QuerySet[Any] = rolled if rolled is not None else self.queryset(where)
        events = Sum("events") if rolled is not None else Count("pk")
        rows = (qs.filter(user_id__isnull=False).values("user_id")
                .annotate(n=events, name=Max("user_name"))
                .order_by("-n", self._key("user.id").asc())[:size])
        return [(str(r["user_id"]), r["name"], int(r["n"])) for r in rows]

    @unavailable_on_error
    def freshness(self, where: Where) -> tuple[int, datetime | None]:
        rolled = self._rollup(where, model=UserRollup)
        if rolled is not None:
            count = int(rolled.aggregate(n=Sum("events"))["n"] or 0)
        else:
            count = self.queryset(where).count()
        # Newest first along the timestamp index, rather than MAX() over every matching row.
        newest = self.queryset(where).order_by("-timestamp").values_list(
            "timestamp", flat=True).first()
        return count, newest
