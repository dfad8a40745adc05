"""The embedded store: the query compiled to the Django ORM on the events alias."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import DatabaseError, connections
from django.db.models import (
    Avg,
    Count,
    Expression,
    F,
    Func,
    IntegerField,
    OrderBy,
    Q,
    QuerySet,
)
from django.db.models.functions import Collate, Trunc
from django.utils.dateparse import parse_datetime

from eventtrail.api import fields as registry
from eventtrail.api import query as api_query
from eventtrail.api.query import (
    PERCENTS,
    AggQuery,
    Filter,
    ListQuery,
    Term,
    TextQuery,
    Where,
)
from eventtrail.conf import get_config
from eventtrail.models import StoredEvent
from eventtrail.stores.base import (
    Buckets,
    Page,
    StoreUnavailable,
    empty_bucket,
    epoch_ms,
    fill,
    percent_key,
    percentile,
    project,
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
        return (
            f"(FLOOR(EXTRACT(EPOCH FROM {sql}) / {self.seconds}) * {self.seconds})::bigint",
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


class DatabaseStore:
    """Both endpoints on the ``StoredEvent`` table; sorting and grouping use indexed columns."""

    name = "database"

    def __init__(self, alias: str | None = None) -> None:
        self.alias = alias or get_config()["DATABASE_ALIAS"]

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

    def _metrics(self, query: AggQuery) -> dict[str, Any]:
        metrics: dict[str, Any] = {"count": Count("pk")}
        if "unique_users" in query.metrics:
            metrics["unique_users"] = Count("user_id", distinct=True)
        if "avg_duration" in query.metrics:
            metrics["avg_duration"] = Avg("duration")
        return metrics

    def _time(self, query: AggQuery) -> Expression:
        assert query.interval is not None
        if query.interval.seconds:
            return EpochBucket("timestamp", query.interval.seconds)
        return Trunc("timestamp", query.interval.calendar or "day", tzinfo=ZoneInfo(query.tz))

    def _key_ms(self, value: Any) -> int:
        if isinstance(value, datetime):
            return epoch_ms(value)
        return int(value) * 1000

    def _aggregate(self, query: AggQuery) -> Buckets:
        qs = self.queryset(query.where)
        columns = [registry.FIELDS[n].column or "" for n in query.group_by]
        for column in columns:
            qs = qs.filter(**{f"{column}__isnull": False})
        annotations: dict[str, Any] = {f"g{i}": self._key(n) for i, n in enumerate(query.group_by)}
        if query.interval:
            annotations["t"] = self._time(query)
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
            if query.interval:
                out["@timestamp"] = self._key_ms(row["t"])
            return out

        if query.composite:
            page = grouped
            if query.after is not None:
                after = list(query.after)
                if query.interval:
                    after[-1] = self._after_time(query, after[-1])
                page = page.filter(_after([(k, False, False) for k in key_names], after))
            rows = list(page.annotate(**metrics).order_by(*key_names)[: query.size + 1])
            more = len(rows) > query.size
            rows = rows[: query.size]
            buckets = [{"key": key(r), **shape(r)} for r in rows]
            self._percentiles(qs, query, annotations, buckets)
            next_after = list(buckets[-1]["key"].values()) if more and buckets else None
            return Buckets(buckets, next_after)
        if not query.group_by:
            rows = list(grouped.annotate(**metrics).order_by("t"))
            buckets = [{"key": key(r), **shape(r)} for r in rows]
            self._percentiles(qs, query, annotations, buckets)
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
        self._percentiles(qs, query, annotations, buckets)
        return Buckets(buckets)

    def _after_time(self, query: AggQuery, ms: Any) -> Any:
        if not isinstance(ms, int):
            return ms
        if query.interval and query.interval.seconds:
            return ms // 1000
        return datetime.fromtimestamp(ms / 1000, UTC)

    def _percentiles(
        self,
        qs: QuerySet[StoredEvent],
        query: AggQuery,
        annotations: dict[str, Any],
        buckets: list[dict[str, Any]],
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
            if query.interval:
                ident = (*ident[:-1], self._key_ms(ident[-1]))
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
