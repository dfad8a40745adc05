"""Request parameters parsed once into a validated, frozen query that every store compiles."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from django.core import signing

from eventtrail.conf import get_config, resolved
from eventtrail.privacy import stored_user_id
from eventtrail.stores import fields as registry

CURSOR_SALT = "eventtrail.api.cursor"
FLOAT32_MAX = 3.4028234663852886e38
MAX_WINDOW = 10_000  # page numbers reach this many hits, like Elasticsearch's max_result_window
DEFAULT_PAGE_SIZE = 50
DEFAULT_BUCKETS = 10
MAX_BUCKETS = 1000
MAX_TERMS = 10
MAX_TERM_LENGTH = 100
CALENDAR = ("hour", "day", "week", "month")
FIXED_UNITS = {"m": 60, "h": 3600, "d": 86400}
METRICS = ("count", "unique_users", "avg_duration", "percentiles_duration")
PERCENTS = (50.0, 95.0, 99.0)
# ``format`` is DRF's own (?format=json), never a filter.
LIST_PARAMS = {
    "format",
    "from",
    "to",
    "q",
    "sort",
    "fields",
    "page_size",
    "page",
    "cursor",
    "include_bots",
}
AGG_PARAMS = {
    "format",
    "from",
    "to",
    "q",
    "include_bots",
    "group_by",
    "size",
    "mode",
    "after",
    "interval",
    "tz",
    "metric",
}


class QueryError(ValueError):
    """A parameter the API cannot accept; becomes a 400 naming ``param``."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class Filter:
    field: str
    lookup: str  # exact, in, not, exists, gt, gte, lt, lte
    value: Any  # typed; a tuple for ``in``, a bool for ``exists``


@dataclass(frozen=True)
class Term:
    text: str  # lower-cased
    prefix: bool = False


@dataclass(frozen=True)
class TextQuery:
    """Every group must match (a group is terms joined by ``|``); no excluded term may match."""

    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...]


@dataclass(frozen=True)
class Scope:
    """What a non-staff caller may see: their own events, or those of their communities."""

    user_id: str | None
    communities: tuple[str, ...] = ()


VIEW_ALL = "eventtrail.view_all_events"


def scope_for(user: Any) -> Scope | None:
    """None (everything) for staff and holders of view_all_events; else own + moderated."""
    if user.is_staff or user.has_perm(VIEW_ALL):
        return None
    communities: tuple[str, ...] = ()
    hook = resolved("MODERATED_COMMUNITIES")
    if hook is not None:
        communities = tuple(sorted({str(slug) for slug in hook(user)}))
    return Scope(stored_user_id(user.pk), communities)


@dataclass(frozen=True)
class Where:
    filters: tuple[Filter, ...] = ()
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    text: TextQuery | None = None
    include_bots: bool = False
    scope: Scope | None = None  # None: everything


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False


@dataclass(frozen=True)
class Cursor:
    values: tuple[Any, ...]
    reverse: bool  # True: the page before ``values``


@dataclass(frozen=True)
class ListQuery:
    where: Where
    sort: tuple[SortKey, ...]
    fields: tuple[str, ...] | None
    page_size: int
    page: int | None
    cursor: Cursor | None
    digest: str  # binds cursors to the query that made them


@dataclass(frozen=True)
class Interval:
    calendar: str | None = None  # hour, day, week, month
    seconds: int | None = None  # fixed intervals

    @property
    def label(self) -> str:
        if self.calendar:
            return self.calendar
        seconds = self.seconds or 0
        for unit, size in sorted(FIXED_UNITS.items(), key=lambda kv: -kv[1]):
            if seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"  # pragma: no cover - parse only makes whole minutes


@dataclass(frozen=True)
class AggQuery:
    where: Where
    group_by: tuple[str, ...]
    interval: Interval | None
    tz: str
    metrics: tuple[str, ...]
    size: int
    composite: bool
    after: tuple[Any, ...] | None
    digest: str = field(default="")


# --- values -------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^now(?P<math>(?:[+-]\d+[smhdwMy])*)(?:/(?P<round>[smhdwMy]))?$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_STEP = re.compile(r"([+-])(\d+)([smhdwMy])")


def _add_months(value: datetime, months: int) -> datetime:
    month = value.month - 1 + months
    year = value.year + month // 12
    month = month % 12 + 1
    days = [
        31,
        29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month - 1]
    return value.replace(year=year, month=month, day=min(value.day, days))


def _round_down(value: datetime, unit: str) -> datetime:
    if unit == "s":
        return value.replace(microsecond=0)
    if unit == "m":
        return value.replace(second=0, microsecond=0)
    if unit == "h":
        return value.replace(minute=0, second=0, microsecond=0)
    day = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        return day
    if unit == "w":
        return day - timedelta(days=day.weekday())
    if unit == "M":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


# Dates outside these bounds are refused: bucket arithmetic near year 1 or 9999 overflows, and
# no event of a web site is dated there.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_date(param: str, raw: str, now: datetime | None = None) -> datetime:
    """ISO-8601 (UTC when no offset) or date math: ``now-10d``, ``now-1h``, ``now-1d/d``."""
    value = _parse_date(param, raw, now)
    if not EARLIEST <= value <= LATEST:
        raise QueryError(param, f"{raw.strip()!r} is outside the supported dates "
                                f"({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d})")
    return value


def _parse_date(param: str, raw: str, now: datetime | None = None) -> datetime:
    raw = raw.strip()
    match = _RELATIVE.match(raw)
    if match:
        try:
            return _date_math(match, now or datetime.now(UTC))
        except (ValueError, OverflowError):
            raise QueryError(param, f"{raw!r} reaches outside the supported dates") from None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            param, f"{raw!r} is not an ISO-8601 date nor date math like now-1h or now-1d/d"
        ) from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise QueryError(param, f"{raw!r} reaches outside the supported dates") from None


def _date_math(match: re.Match[str], value: datetime) -> datetime:
    """Apply ``+1d``, ``-3h``... steps then the ``/unit`` rounding, as Elasticsearch does."""
    for sign, amount, unit in _STEP.findall(match.group("math") or ""):
        n = int(amount) * (1 if sign == "+" else -1)
        if unit in _SECONDS:
            value = value + timedelta(seconds=n * _SECONDS[unit])
        else:
            value = _add_months(value, n * (12 if unit == "y" else 1))
    if match.group("round"):
        value = _round_down(value, match.group("round"))
    return value


def _value(spec: registry.ApiField, param: str, raw: str) -> Any:
    if spec.kind == "keyword":
        return raw
    if spec.kind == "integer":
        try:
            number = int(raw)
        except ValueError:
            raise QueryError(param, f"{raw!r} is not an integer") from None
        if not -(2**63) <= number < 2**63:
            raise QueryError(param, f"{raw!r} is out of range for a 64-bit integer")
        return number
    if spec.kind == "number":
        try:
            real = float(raw)
        except ValueError:
            raise QueryError(param, f"{raw!r} is not a number") from None
        if not math.isfinite(real):
            raise QueryError(param, f"{raw!r} is not a finite number")
        # Number fields are single-precision floats in the Elasticsearch mapping.
        if abs(real) > FLOAT32_MAX:
            raise QueryError(param, f"{raw!r} is out of range for a 32-bit float")
        return real
    if spec.kind == "date":
        return parse_date(param, raw)
    if spec.kind == "boolean":
        return parse_bool(param, raw)
    if spec.kind == "ip":
        try:
            return str(ipaddress.ip_address(raw.strip()))
        except ValueError:
            raise QueryError(param, f"{raw!r} is not an IP address") from None
    raise QueryError(param, f"{spec.name} cannot be filtered")  # pragma: no cover


def parse_bool(param: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise QueryError(param, f"{raw!r} is not a boolean (true or false)")


def parse_int(param: str, raw: str, low: int, high: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(param, f"{raw!r} is not an integer") from None
    if value < low:
        raise QueryError(param, f"must be at least {low}")
    if high is not None and value > high:
        raise QueryError(param, f"{value} is over the maximum of {high}")
    return value


# --- parts --------------------------------------------------------------------------------------


def parse_filter(param: str, raw: str) -> Filter:
    name, _, lookup = param.partition("__")
    lookup = lookup or "exact"
    spec = registry.FIELDS.get(name)
    if spec is None:
        raise QueryError(param, f"unknown field {name!r}")
    if not spec.filterable:
        raise QueryError(param, f"field {name!r} cannot be filtered")
    if lookup not in registry.LOOKUPS:
        raise QueryError(
            param, f"unknown lookup {lookup!r}; use one of {', '.join(registry.LOOKUPS)}"
        )
    if lookup not in spec.lookups:
        allowed = ", ".join(x for x in registry.LOOKUPS if x in spec.lookups)
        raise QueryError(param, f"lookup {lookup!r} is not allowed on {name}; allowed: {allowed}")
    if lookup == "exists":
        return Filter(name, lookup, parse_bool(param, raw))
    if lookup == "in":
        items = [item for item in raw.split(",") if item != ""]
        if not items:
            raise QueryError(param, "give one or more comma-separated values")
        if len(items) > 100:
            raise QueryError(param, "at most 100 values")
        return Filter(name, lookup, tuple(dict.fromkeys(_value(spec, param, i) for i in items)))
    return Filter(name, lookup, _value(spec, param, raw))


_TOKEN = re.compile(r'"(?P<phrase>[^"]*)"?|(?P<word>[^\s"|]+)|(?P<bar>\|)')


def parse_text(raw: str) -> TextQuery | None:
    """A lenient simple_query_string subset; whatever the input, the result is safe to run.

    Terms and "phrases" are ANDed; ``a | b`` is either; ``-x`` excludes; ``+x`` requires;
    ``abc*`` is a prefix. Stray operators and unbalanced quotes are ignored, never errors.
    """
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    join_next = False
    count = 0
    for match in _TOKEN.finditer(raw):
        if match.group("bar"):
            join_next = bool(groups)
            continue
        token = match.group("phrase") if match.group("phrase") is not None else match.group("word")
        sign = ""
        if match.group("word") is not None:
            while token and token[0] in "+-":
                sign = sign or token[0]
                token = token[1:]
        prefix = False
        if match.group("word") is not None:
            prefix = token.endswith("*")
            token = token.strip("*")
        token = token.strip().lower()[:MAX_TERM_LENGTH]
        if not token or count >= MAX_TERMS:
            join_next = False
            continue
        count += 1
        term = Term(token, prefix)
        if sign == "-":
            excluded.append(term)
        elif join_next and groups:
            groups[-1].append(term)
        else:
            groups.append([term])
        join_next = False
    if not groups and not excluded:
        return None
    return TextQuery(tuple(tuple(g) for g in groups), tuple(excluded))


def parse_sort(raw: str | None) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for item in (raw or "-@timestamp").split(","):
        item = item.strip()
        if not item:
            continue
        descending = item.startswith("-")
        name = item.lstrip("+-")
        spec = registry.FIELDS.get(name)
        if spec is None:
            raise QueryError("sort", f"unknown field {name!r}")
        if not spec.sortable:
            raise QueryError("sort", f"field {name!r} is not sortable")
        if any(k.field == name for k in keys):
            raise QueryError("sort", f"field {name!r} appears twice")
        keys.append(SortKey(name, descending))
    if not keys:
        keys.append(SortKey(registry.TIMESTAMP, True))
    if keys[-1].field != registry.TIEBREAKER and all(k.field != registry.TIEBREAKER for k in keys):
        keys.append(SortKey(registry.TIEBREAKER, keys[0].descending))
    return tuple(keys)


def parse_fields(raw: str | None) -> tuple[str, ...] | None:
    if not raw:
        return None
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    for name in names:
        spec = registry.FIELDS.get(name)
        if spec is None or not spec.selectable:
            raise QueryError("fields", f"unknown field {name!r}")
    return names or None


def parse_interval(raw: str) -> Interval:
    raw = raw.strip()
    if raw in CALENDAR:
        return Interval(calendar=raw)
    match = re.fullmatch(r"(\d{1,4})([mhd])", raw)
    if not match or int(match.group(1)) == 0:
        raise QueryError(
            "interval", f"{raw!r} is not an interval: use hour, day, week, month or e.g. 30m, 6h"
        )
    return Interval(seconds=int(match.group(1)) * FIXED_UNITS[match.group(2)])


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def parse_tz(raw: str | None) -> str:
    """An IANA time zone name. Checked against the zones the system knows rather than by
    opening ``raw``: a directory ("America") or an over-long name raises OSError there."""
    if not raw:
        return "UTC"
    if raw not in _time_zones():
        raise QueryError("tz", f"unknown time zone {raw[:64]!r}"
                         + (" (a region: name a city in it, e.g. Europe/Paris)"
                            if any(z.startswith(raw + "/") for z in _time_zones()) else ""))
    ZoneInfo(raw)  # known: this reads it, and caches it for the query
    return raw


def parse_where(params: Mapping[str, str], known: set[str], scope: Scope | None) -> Where:
    filters: list[Filter] = []
    for param, raw in params.items():
        if param in known:
            continue
        filters.append(parse_filter(param, raw))
    start = parse_date("from", params["from"]) if params.get("from") else None
    end = parse_date("to", params["to"]) if params.get("to") else None
    if start and end and start > end:
        raise QueryError("to", "is before from")
    include_bots = get_config()["INCLUDE_BOTS"]
    if params.get("include_bots"):
        include_bots = parse_bool("include_bots", params["include_bots"])
    text = parse_text(params["q"]) if params.get("q") else None
    return Where(tuple(sorted(filters, key=repr)), start, end, text, include_bots, scope)


def digest(parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _digest(flat: Mapping[str, str], where: Where, store: str, ignore: set[str]) -> str:
    """Raw parameters, not resolved ones: ``now-1h`` must name the same query on every page."""
    params = sorted((k, v) for k, v in flat.items() if k not in ignore)
    return digest([store, params, repr(where.scope), where.include_bots])


def sign_cursor(values: Any, reverse: bool, query_digest: str) -> str:
    return signing.dumps({"v": values, "r": reverse, "h": query_digest}, salt=CURSOR_SALT)


def read_cursor(param: str, raw: str, query_digest: str) -> dict[str, Any]:
    try:
        data = signing.loads(raw, salt=CURSOR_SALT)
    except signing.BadSignature:
        raise QueryError(param, "invalid cursor: tampered with or not made by this API") from None
    if not isinstance(data, dict) or data.get("h") != query_digest:
        raise QueryError(param, "cursor belongs to another query; start again without it")
    return data


def flat_params(params: Mapping[str, Any]) -> dict[str, str]:
    """QueryDict -> plain dict; the last value of a repeated parameter wins.

    NUL characters are refused (PostgreSQL cannot store or compare them), except in ``q``,
    which is lenient and drops them.
    """
    if hasattr(params, "lists"):
        flat = {str(k): str(v[-1]) for k, v in params.lists()}
    else:
        flat = {str(k): str(v) for k, v in params.items()}
    if "q" in flat:
        flat["q"] = flat["q"].replace("\x00", "")
    for key, value in flat.items():
        if "\x00" in value or "\x00" in key:
            raise QueryError(key.replace("\x00", "\\x00"), "contains a NUL character")
    return flat


def parse_list(params: Mapping[str, Any], scope: Scope | None = None, store: str = "") -> ListQuery:
    flat = flat_params(params)
    where = parse_where(flat, LIST_PARAMS, scope)
    sort = parse_sort(flat.get("sort"))
    selected = parse_fields(flat.get("fields"))
    cap = get_config()["MAX_PAGE_SIZE"]
    page_size = (
        parse_int("page_size", flat["page_size"], 1, cap)
        if flat.get("page_size")
        else min(DEFAULT_PAGE_SIZE, cap)
    )
    query_digest = _digest(flat, where, store, {"cursor", "page", "page_size", "fields"})
    page = cursor = None
    if flat.get("page") and flat.get("cursor"):
        raise QueryError("page", "use either page or cursor, not both")
    if flat.get("page"):
        page = parse_int("page", flat["page"], 1)
        if page * page_size > MAX_WINDOW:
            raise QueryError(
                "page",
                f"page numbers reach the first {MAX_WINDOW} hits; use the cursor to go deeper",
            )
    elif flat.get("cursor"):
        data = read_cursor("cursor", flat["cursor"], query_digest)
        values = data.get("v")
        if not isinstance(values, list) or len(values) != len(sort):
            raise QueryError("cursor", "invalid cursor")
        cursor = Cursor(tuple(values), bool(data.get("r")))
    return ListQuery(where, sort, selected, page_size, page, cursor, query_digest)


def parse_aggregate(
    params: Mapping[str, Any], scope: Scope | None = None, store: str = ""
) -> AggQuery:
    flat = flat_params(params)
    where = parse_where(flat, AGG_PARAMS, scope)
    group_by: tuple[str, ...] = ()
    if flat.get("group_by"):
        names = [n.strip() for n in flat["group_by"].split(",") if n.strip()]
        if len(names) > 2:
            raise QueryError("group_by", "at most two fields")
        if len(set(names)) != len(names):
            raise QueryError("group_by", "a field appears twice")
        for name in names:
            spec = registry.FIELDS.get(name)
            if spec is None:
                raise QueryError("group_by", f"unknown field {name!r}")
            if not spec.groupable:
                raise QueryError("group_by", f"field {name!r} is not groupable")
        group_by = tuple(names)
    interval = parse_interval(flat["interval"]) if flat.get("interval") else None
    tz = parse_tz(flat.get("tz"))
    if not group_by and interval is None:
        raise QueryError("group_by", "give group_by, interval, or both")
    metrics: tuple[str, ...] = ("count",)
    if flat.get("metric"):
        names = [m.strip() for m in flat["metric"].split(",") if m.strip()]
        for name in names:
            if name not in METRICS:
                raise QueryError("metric", f"unknown metric {name!r}; use {', '.join(METRICS)}")
        metrics = tuple(dict.fromkeys(["count", *names]))
    mode = flat.get("mode") or "terms"
    if mode not in {"terms", "composite"}:
        raise QueryError("mode", f"unknown mode {mode!r}; use terms or composite")
    composite = mode == "composite"
    if composite and not group_by:
        raise QueryError("mode", "composite needs group_by")
    if interval and group_by and not composite:
        raise QueryError("interval", "with group_by, an interval needs mode=composite")
    size = parse_int("size", flat["size"], 1, MAX_BUCKETS) if flat.get("size") else DEFAULT_BUCKETS
    query_digest = _digest(flat, where, store, {"after", "size"})
    after = None
    if flat.get("after"):
        if not composite:
            raise QueryError("after", "after needs mode=composite")
        data = read_cursor("after", flat["after"], query_digest)
        values = data.get("v")
        width = len(group_by) + (1 if interval else 0)
        if not isinstance(values, list) or len(values) != width:
            raise QueryError("after", "invalid cursor")
        after = tuple(values)
    return AggQuery(where, group_by, interval, tz, metrics, size, composite, after, query_digest)
