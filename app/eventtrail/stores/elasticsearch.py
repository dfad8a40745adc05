"""The Elasticsearch store: the query compiled to elasticsearch.dsl on the event data stream."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from typing import Any

from elasticsearch.dsl import A, Q, Search

from elasticsearch import ApiError, Elasticsearch, TransportError
from eventtrail.conf import get_config
from eventtrail.stores import fields as registry
from eventtrail.stores import query as api_query
from eventtrail.stores.base import (
    AS_OF,
    Buckets,
    Page,
    StoreUnavailable,
    Tally,
    bucket_start,
    empty_bucket,
    fill,
    next_start,
    project,
    users_per_bucket,
)
from eventtrail.stores.query import PERCENTS, AggQuery, Filter, Interval, ListQuery, Term, Where

# cardinality is exact below this many distinct values, approximate (HyperLogLog++) above.
PRECISION_THRESHOLD = 3000
MAX_KEYS = 10_000  # terms buckets one analytics request may ask for
PAGE = 5000  # composite buckets per request when walking every bucket
# Buckets one answer may hold, under the engines' search.max_buckets (65,535 on OpenSearch).
GRID_BUCKETS = 60_000
SHORT_SERIES = 100  # buckets of a series asked for as one composite page first (see _series)
# A longer series is asked as this many slices of its period at once: one shard's search runs
# on one core, and a slice's answer is sent and read while the next is searched. Also from
# compute.gather's threads (an endpoint's questions): no page asks for a series this long.
GRID_SLICES = 2
# How long a period's count of distinct values (users) steers _grid's layout before it is asked
# again, and how many such notes (with _kept_parts' of questions asked or too large) are kept.
LAYOUT_SECONDS = 600
LAYOUTS = 4096
UTC_DAY = Interval(seconds=86400)  # daily_tally's days: fixed_interval 1d, from the epoch
# Settled parts kept (see _settled: series, tallies, a poll's freshness...): at most this many
# answers, holding this many keys in all (about 200 bytes each: 40 MB at most per process),
# the least recently used dropped first. Many answers are small (one user's page holds a few
# dozen keys), so the count is generous: it must not push out a site page's month.
KEPT_ANSWERS = 1000
KEPT_KEYS = 200_000
# Pages of (key, user) pairs a part of a tally may hold (see tally): past them, asked whole.
PAIR_PAGES = 10
# Settled days a tally's period needs before it is asked in parts (_kept_parts): its three
# requests (the count, today, a partial first day) took 17-30 ms on the bench's 1M events,
# asking it whole 10-16 ms for three days and 35-40 ms for thirty.
PARTS_FROM_DAYS = 7


class _Crowded(Exception):
    """A part held more keys than a kept answer may: the question is asked whole instead."""


def _bucket_count(start: datetime, end: datetime, interval: Interval, tz: str) -> int:
    """How many buckets hold moments from ``start`` to ``end`` (inclusive), counted up to one
    past ``GRID_BUCKETS``."""
    bucket = bucket_start(start, interval, tz)
    if interval.seconds:
        return int((end - bucket).total_seconds()) // interval.seconds + 1
    count = 0
    while bucket <= end and count <= GRID_BUCKETS:
        bucket, count = next_start(bucket, interval, tz), count + 1
    return count


def _cuts(start: datetime, end: datetime, interval: Interval, tz: str,
          slices: int) -> list[datetime]:
    """Bucket starts that cut ``start``-``end`` into about ``slices`` slices of equal time:
    every bucket lies whole in one slice, so the slices' answers add up."""
    cuts: list[datetime] = []
    for i in range(1, slices):
        cut = bucket_start(start + (end - start) * i / slices, interval, tz)
        if cut > (cuts[-1] if cuts else start) and cut < end:
            cuts.append(cut)
    return cuts


def _keys_in(answer: dict[Any, Any]) -> int:
    """A kept answer's size: its keys, or its inner keys (a daily tally's days per key)."""
    return sum(len(v) if isinstance(v, dict) else 1 for v in answer.values())


def _kept_key(question: tuple[Any, ...], part: Where) -> tuple[Any, ...]:
    """Where ``_settled`` keeps a part's answer: the question (with its interval and zone),
    then the part."""
    return (*question, part)


def _es_value(f: Filter, value: Any) -> Any:
    if registry.FIELDS[f.field].kind == "date":
        return value.isoformat()
    return value


def _filter(f: Filter) -> Any:
    name = registry.FIELDS[f.field].es
    if f.lookup == "exists":
        return Q("exists", field=name) if f.value else ~Q("exists", field=name)
    if f.lookup == "exact":
        return Q("term", **{name: _es_value(f, f.value)})
    if f.lookup == "not":
        return ~Q("term", **{name: _es_value(f, f.value)})
    if f.lookup == "in":
        return Q("terms", **{name: [_es_value(f, v) for v in f.value]})
    return Q("range", **{name: {f.lookup: _es_value(f, f.value)}})


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _term(term: Term) -> Any:
    pattern = _escape(term.text) + "*"
    if not term.prefix:
        pattern = "*" + pattern
    return Q(
        "bool",
        should=[
            Q("wildcard", **{registry.FIELDS[n].es: {"value": pattern, "case_insensitive": True}})
            for n in registry.TEXT_FIELDS
        ],
        minimum_should_match=1,
    )


def where_query(where: Where) -> Any:
    must: list[Any] = [_filter(f) for f in where.filters]
    if where.start or where.end:
        bounds: dict[str, Any] = {"format": "strict_date_optional_time"}
        if where.start:
            bounds["gte"] = where.start.isoformat()
        if where.end:
            bounds["lt"] = where.end.isoformat()
        must.append(Q("range", **{"@timestamp": bounds}))
    if where.text:
        for group in where.text.groups:
            must.append(Q("bool", should=[_term(t) for t in group], minimum_should_match=1))
        must.extend(~_term(t) for t in where.text.excluded)
    if not where.include_bots:
        must.append(~Q("term", **{registry.BOT: True}))
    if where.scope is not None:
        scope: list[Any] = []
        if where.scope.user_id is not None:
            scope.append(Q("term", **{registry.USER_ID: where.scope.user_id}))
        if where.scope.communities:
            scope.append(Q("terms", **{registry.COMMUNITY: list(where.scope.communities)}))
        must.append(Q("bool", should=scope, minimum_should_match=1) if scope else ~Q("match_all"))
    return Q("bool", filter=must)


def _bucket_key(name: str, value: Any) -> Any:
    """Terms keys as the database gives them: booleans come back from ES as 1/0."""
    if registry.FIELDS[name].kind == "boolean":
        return bool(value)
    return value


class ElasticsearchStore:
    """Searches ``DATA_STREAM`` as the API's read-only user."""

    name = "elasticsearch"

    def __init__(self) -> None:
        # _grid's estimates: (field, question, span in hours) -> (distinct values, when asked);
        # and questions too large to keep in parts (_kept_parts) -> (1, when found)
        self._layouts: dict[tuple[Any, ...], tuple[int, float]] = {}
        # _settled's parts: (*question, interval, tz, part's Where) -> (events then, the
        # answer, its keys), least recently used first
        self._kept: OrderedDict[tuple[Any, ...], tuple[int, dict[Any, Any], int]] = \
            OrderedDict()
        self._kept_lock = threading.Lock()
        # _events_between's counts: (start, end) -> (when asked, the count)
        self._counts: dict[tuple[datetime | None, datetime], tuple[float, Future[int]]] = {}

    @cached_property
    def client(self) -> Elasticsearch:
        config = get_config()
        options: dict[str, Any] = {"request_timeout": 10, **config["ELASTICSEARCH_OPTIONS"]}
        if config["ELASTICSEARCH_USER"]:
            options["basic_auth"] = (config["ELASTICSEARCH_USER"], config["ELASTICSEARCH_PASSWORD"])
        return Elasticsearch(config["ELASTICSEARCH_HOSTS"], **options)

    def _search(self) -> Search:
        return Search(using=self.client, index=get_config()["DATA_STREAM"])

    def _run(self, search: Search) -> Any:
        try:
            return search.execute()
        except ApiError as exc:
            if exc.meta.status == 404:
                return None  # no data stream yet: no events
            raise StoreUnavailable(f"Elasticsearch refused the query: {exc.message}") from exc
        except TransportError as exc:
            raise StoreUnavailable(f"Elasticsearch is unreachable: {exc.message}") from exc

    def search(self, query: ListQuery) -> Page:
        reverse = bool(query.cursor and query.cursor.reverse)
        sort = []
        for key in query.sort:
            descending = key.descending != reverse
            sort.append(
                {
                    registry.FIELDS[key.field].es: {
                        "order": "desc" if descending else "asc",
                        "missing": "_first" if reverse else "_last",
                    }
                }
            )
        search = self._search().query(where_query(query.where)).sort(*sort)
        if query.fields is not None:
            search = search.source(includes=[registry.FIELDS[n].es for n in query.fields])
        total = None
        capped = False
        if query.page is not None:
            start = (query.page - 1) * query.page_size
            search = search.extra(
                from_=start, size=query.page_size + 1, track_total_hits=api_query.MAX_WINDOW
            )
        else:
            search = search.extra(size=query.page_size + 1, track_total_hits=False)
            if query.cursor is not None:
                search = search.extra(search_after=list(query.cursor.values))
        response = self._run(search)
        hits = list(response.hits.hits) if response is not None else []
        if query.page is not None and response is not None:
            total = int(response.hits.total.value)
            capped = response.hits.total.relation != "eq"
        elif query.page is not None:
            total = 0
        more = len(hits) > query.page_size
        hits = hits[: query.page_size]
        if reverse:
            hits.reverse()
        return Page(
            hits=[project(hit["_source"].to_dict(), query.fields) for hit in hits],
            sort_values=[list(hit["sort"]) for hit in hits],
            more=more,
            total=total,
            capped=capped,
        )

    def _metrics(self, query: AggQuery, agg: Any) -> None:
        if "unique_users" in query.metrics:
            agg.metric(
                "unique_users",
                "cardinality",
                field=registry.USER_ID,
                precision_threshold=PRECISION_THRESHOLD,
            )
        if "avg_duration" in query.metrics:
            agg.metric("avg_duration", "avg", field=registry.DURATION)
        if "percentiles_duration" in query.metrics:
            agg.metric(
                "percentiles_duration",
                "percentiles",
                field=registry.DURATION,
                percents=list(PERCENTS),
            )

    def _shape(self, query: AggQuery, bucket: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"count": bucket["doc_count"]}
        if "unique_users" in query.metrics:
            out["unique_users"] = bucket["unique_users"]["value"]
        if "avg_duration" in query.metrics:
            out["avg_duration"] = bucket["avg_duration"]["value"]
        if "percentiles_duration" in query.metrics:
            values = bucket["percentiles_duration"]["values"].to_dict()
            out["percentiles_duration"] = {
                f"{p:g}": values.get(f"{p:.1f}") if bucket["doc_count"] else None for p in PERCENTS
            }
        return out

    def _histogram(self, query: AggQuery) -> dict[str, Any]:
        assert query.interval is not None
        spec: dict[str, Any] = {"field": registry.TIMESTAMP}
        if query.interval.seconds:
            spec["fixed_interval"] = f"{query.interval.seconds}s"
        else:
            spec["calendar_interval"] = query.interval.calendar
            spec["time_zone"] = query.tz
        return spec

    def aggregate(self, query: AggQuery) -> Buckets:
        search = (
            self._search().query(where_query(query.where)).extra(size=0, track_total_hits=False)
        )
        if query.composite:
            sources: list[dict[str, Any]] = [
                {name: A("terms", field=registry.FIELDS[name].es)} for name in query.group_by
            ]
            if query.interval:
                sources.append({"@timestamp": A("date_histogram", **self._histogram(query))})
            params: dict[str, Any] = {"sources": sources, "size": query.size + 1}
            if query.after is not None:
                names = [*query.group_by, *(["@timestamp"] if query.interval else [])]
                params["after"] = dict(zip(names, query.after, strict=True))
            agg = search.aggs.bucket("groups", "composite", **params)
            self._metrics(query, agg)
            response = self._run(search)
            raw = list(response.aggregations.groups.buckets) if response is not None else []
            more = len(raw) > query.size
            page = [
                {
                    "key": {
                        n: _bucket_key(n, v) if n != "@timestamp" else int(v)
                        for n, v in b["key"].to_dict().items()
                    },
                    **self._shape(query, b),
                }
                for b in raw[: query.size]
            ]
            after = list(page[-1]["key"].values()) if more and page else None
            return Buckets(page, after)
        if not query.group_by:
            agg = search.aggs.bucket(
                "time", "date_histogram", min_doc_count=1, **self._histogram(query)
            )
            self._metrics(query, agg)
            response = self._run(search)
            raw = list(response.aggregations.time.buckets) if response is not None else []
            found = {int(b["key"]): self._shape(query, b) for b in raw}
            return Buckets(fill(found, query, empty_bucket(query)))
        order = [{"_count": "desc"}, {"_key": "asc"}]
        first = search.aggs.bucket(
            "g0", "terms", field=registry.FIELDS[query.group_by[0]].es, size=query.size, order=order
        )
        leaf = first
        if len(query.group_by) == 2:
            leaf = first.bucket(
                "g1",
                "terms",
                field=registry.FIELDS[query.group_by[1]].es,
                size=query.size,
                order=order,
            )
        self._metrics(query, leaf)
        response = self._run(search)
        buckets: list[dict[str, Any]] = []
        if response is None:
            return Buckets(buckets)
        name0 = query.group_by[0]
        for b0 in response.aggregations.g0.buckets:
            k0 = _bucket_key(name0, b0["key"])
            if len(query.group_by) == 1:
                buckets.append({"key": {name0: k0}, **self._shape(query, b0)})
                continue
            name1 = query.group_by[1]
            for b1 in b0["g1"]["buckets"]:
                key = {name0: k0, name1: _bucket_key(name1, b1["key"])}
                buckets.append({"key": key, **self._shape(query, b1)})
        return Buckets(buckets)

    # --- analytics primitives ------------------------------------------------------------------

    def _agg_search(self, where: Where, *extra: Any) -> Search:
        query = where_query(where)
        if extra:
            query = Q("bool", filter=[query, *extra])
        return self._search().query(query).extra(size=0, track_total_hits=False)

    @staticmethod
    def _only(field: str, keys: Sequence[Any]) -> Any:
        """A filter to the documents of the keys an aggregation is asked about (beside its
        ``include``): the index finds them, rather than the aggregation visiting every document
        of the period to skip the others."""
        return Q("terms", **{field: list(keys)})

    def _users_metric(self, agg: Any) -> None:
        agg.metric("users", "cardinality", field=registry.USER_ID,
                   precision_threshold=PRECISION_THRESHOLD)

    def tally(
        self, where: Where, field: str, *, keys: Sequence[str] | None = None, size: int = 10
    ) -> list[Tally]:
        name = registry.FIELDS[field].es
        if keys is None and registry.FIELDS[field].kind != "boolean":
            parts = self._kept_parts(where, ("tally", name), lambda w: self._pairs(w, name))
            if parts is not None:
                events: dict[Any, int] = {}
                users: dict[Any, set[str]] = {}
                for part in parts:
                    for key, by_user in part.items():
                        events[key] = events.get(key, 0) + sum(by_user.values())
                        users.setdefault(key, set()).update(u for u in by_user if u is not None)
                ranked = sorted(events, key=lambda k: (-events[k], k))[:size]
                return [Tally(str(k), events[k], len(users[k])) for k in ranked]
        params: dict[str, Any] = {"field": name, "order": [{"_count": "desc"}, {"_key": "asc"}]}
        only: list[Any] = []
        if keys is not None:
            if not keys:
                return []
            wanted = list(dict.fromkeys(keys))
            params.update(include=wanted, size=len(wanted))
            only.append(self._only(name, wanted))
        else:
            # One shard per backing index here; a generous shard_size keeps top-N exact anyway.
            params.update(size=size, shard_size=max(size * 10, 1000))
        search = self._agg_search(where, *only)
        self._users_metric(search.aggs.bucket("k", "terms", **params))
        response = self._run(search)
        if response is None:
            return []
        return [Tally(str(b["key"]), int(b["doc_count"]), int(b["users"]["value"]))
                for b in response.aggregations.k.buckets]

    def _pairs(self, where: Where, name: str) -> dict[Any, dict[str | None, int]]:
        """Events per value of ``name`` and user (None: no user), by composite pages; _Crowded
        past ``PAIR_PAGES`` pages."""
        found = self._composite(self._agg_search(where), [
            {"k": A("terms", field=name)},
            {"u": A("terms", field=registry.USER_ID, missing_bucket=True)}], pages=PAIR_PAGES)
        if found is None:
            raise _Crowded
        out: dict[Any, dict[str | None, int]] = {}
        for b in found:
            user = b["key"]["u"]
            out.setdefault(b["key"]["k"], {})[None if user is None else str(user)] = \
                int(b["doc_count"])
        return out

    def _kept_parts(self, where: Where, question: tuple[Any, ...],
                    ask: Callable[[Where], dict[Any, Any]]) -> list[dict[Any, Any]] | None:
        """``ask``'s answers over the period's UTC days (``_in_parts``) for a question whose
        answers add up over parts (events per key and user); None when the period has fewer
        than ``PARTS_FROM_DAYS`` settled days, when it is asked for the first time (in
        ``LAYOUT_SECONDS``), or a part was too large to keep (remembered as long): the caller
        asks the period whole.

        A tally over a month that ends now is asked again after every new event, whole: on
        the bench's 1M events 35-55 ms (a page's most viewed articles with their readers, the
        top members, a recommendation's co-users), against 12-17 ms for today's part."""
        span = self._settled_span(where, UTC_DAY, "UTC")
        if span is None or (span[0] is not None
                            and span[1] - span[0] < timedelta(days=PARTS_FROM_DAYS)):
            return None
        crowded = ("crowded", *question, replace(where, start=None, end=None))
        if self._recall(crowded) is not None:
            return None
        # Its settled part is every pair, heavier than the whole question: only worth it asked
        # again, so never the first time (``_first_ask``).
        if self._first_ask((*question, UTC_DAY, "UTC"),
                           replace(where, start=span[0], end=span[1])):
            return None
        try:
            return self._in_parts(where, UTC_DAY, "UTC", question, ask)
        except _Crowded:
            self._remember(crowded, 1)
            return None

    def split_tally(
        self, where: Where, field: str, keys: Sequence[str], by: str, values: Sequence[Any]
    ) -> dict[str, dict[str, int]]:
        wanted, split = list(dict.fromkeys(keys)), list(dict.fromkeys(values))
        if not wanted or not split:
            return {}

        def ask(part: Where) -> dict[str, dict[str, int]]:
            search = self._agg_search(part, Q("terms", **{registry.FIELDS[by].es: split}),
                                      self._only(registry.FIELDS[field].es, wanted))
            search.aggs.bucket("k", "terms", field=registry.FIELDS[field].es, include=wanted,
                               size=len(wanted)).bucket(
                "by", "terms", field=registry.FIELDS[by].es, size=len(split))
            response = self._run(search)
            if response is None:
                return {}
            return {str(b["key"]): {str(v["key"]): int(v["doc_count"])
                                    for v in b["by"]["buckets"]}
                    for b in response.aggregations.k.buckets}

        parts = self._kept_parts(where, ("split", field, tuple(wanted), by, tuple(split)), ask)
        out: dict[str, dict[str, int]] = {}
        for part in parts if parts is not None else [ask(where)]:
            for key, counts in part.items():
                into = out.setdefault(key, {})
                for value, n in counts.items():
                    into[value] = into.get(value, 0) + n
        return out

    def daily_tally(
        self, where: Where, field: str, keys: Sequence[str]
    ) -> dict[str, dict[int, tuple[int, int]]]:
        if not keys:
            return {}
        wanted = list(dict.fromkeys(keys))
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for part in self._in_parts(where, UTC_DAY, "UTC", ("daily", field, tuple(wanted)),
                                   lambda w: self._daily_asked(w, field, wanted)):
            for key, days in part.items():
                out.setdefault(key, {}).update(days)
        return out

    def _daily_asked(self, where: Where, field: str,
                     wanted: list[str]) -> dict[str, dict[int, tuple[int, int]]]:
        search = self._agg_search(where, self._only(registry.FIELDS[field].es, wanted))
        days = search.aggs.bucket("k", "terms", field=registry.FIELDS[field].es,
                                  include=wanted, size=len(wanted)).bucket(
            "days", "date_histogram", field=registry.TIMESTAMP, fixed_interval="1d",
            min_doc_count=1)
        self._users_metric(days)
        response = self._run(search)
        out: dict[str, dict[int, tuple[int, int]]] = {}
        if response is None:
            return out
        for b in response.aggregations.k.buckets:
            out[str(b["key"])] = {int(d["key"]): (int(d["doc_count"]), int(d["users"]["value"]))
                                  for d in b["days"]["buckets"]}
        return out

    def _composite(self, search: Search, sources: list[dict[str, Any]],
                   pages: int | None = None) -> list[Any] | None:
        """Every composite bucket, page after page; None when ``pages`` pages did not hold
        them all."""
        buckets: list[Any] = []
        after: dict[str, Any] | None = None
        while True:
            if pages is not None and pages <= 0:
                return None
            page = search._clone()
            params: dict[str, Any] = {"sources": sources, "size": PAGE}
            if after is not None:
                params["after"] = after
            page.aggs.bucket("pairs", "composite", **params)
            response = self._run(page)
            if response is None:
                return buckets
            page_found = response.to_dict()["aggregations"]["pairs"]  # plain: see _grid
            found = page_found["buckets"]
            buckets.extend(found)
            after = page_found.get("after_key")
            if len(found) < PAGE or after is None:
                return buckets
            pages = None if pages is None else pages - 1

    def users(self, where: Where, *, limit: int) -> list[str]:
        if limit <= MAX_KEYS:
            # The first ``limit`` of the whole are among the first ``limit`` of each part.
            parts = self._kept_parts(where, ("users", limit),
                                     lambda w: self._first_users(w, limit))
            if parts is None:
                parts = [self._first_users(where, limit)]
            return sorted({user for part in parts for user in part})[:limit]
        found = self._composite(self._agg_search(where),
                                [{"u": A("terms", field=registry.USER_ID)}]) or []
        return sorted(str(b["key"]["u"]) for b in found)[:limit]

    def _first_users(self, where: Where, limit: int) -> dict[str, int]:
        """The first ``limit`` users in key order (the keys), by a terms aggregation ordered
        by key: exact (each shard's first ones hold the first overall), and a third quicker
        than composite pages (24 against 34-38 ms over a month of 1M events)."""
        search = self._agg_search(where)
        search.aggs.bucket("u", "terms", field=registry.USER_ID, size=max(limit, 1),
                           order={"_key": "asc"})
        response = self._run(search)
        if response is None:
            return {}
        return {str(b["key"]): 1 for b in response.aggregations.u.buckets[:limit]}

    def count_users(self, where: Where) -> int:
        def everyone(part: Where) -> dict[str, int]:
            found = self._first_users(part, MAX_KEYS + 1)
            if len(found) > MAX_KEYS:
                raise _Crowded
            return found

        parts = self._kept_parts(where, ("everyone",), everyone)
        if parts is not None:  # exact: the users of the parts, each counted once
            return len({user for part in parts for user in part})
        search = self._agg_search(where)
        self._users_metric(search.aggs)
        response = self._run(search)
        return int(response.aggregations.users.value) if response is not None else 0

    def first_seen(self, where: Where, users: Sequence[str]) -> dict[str, datetime]:
        wanted = list(dict.fromkeys(users))
        if where.end is not None and where.end <= datetime.now(UTC):
            # Before a period (new versus returning users): kept while as many events are.
            return self._settled(where, ("first", tuple(wanted)),
                                 lambda w: self._first_seen(w, wanted))
        return self._first_seen(where, wanted)

    def _first_seen(self, where: Where, wanted: list[str]) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        for start in range(0, len(wanted), MAX_KEYS):
            chunk = wanted[start:start + MAX_KEYS]
            search = self._agg_search(where, self._only(registry.USER_ID, chunk))
            search.aggs.bucket("u", "terms", field=registry.USER_ID, include=chunk,
                               size=len(chunk)).metric("first", "min", field=registry.TIMESTAMP)
            response = self._run(search)
            if response is None:
                return out
            for b in response.aggregations.u.buckets:
                out[str(b["key"])] = datetime.fromtimestamp(b["first"]["value"] / 1000, UTC)
        return out

    def _time_source(self, interval: Interval, tz: str, **extra: Any) -> Any:
        spec: dict[str, Any] = {"field": registry.TIMESTAMP, **extra}
        if interval.seconds:
            spec["fixed_interval"] = f"{interval.seconds}s"
        else:
            spec.update(calendar_interval=interval.calendar, time_zone=tz)
        return A("date_histogram", **spec)

    def _grid(self, where: Where, interval: Interval, tz: str,
              field: str | None) -> dict[tuple[str | None, int], int] | None:
        """Events per (value of the engine ``field`` or None, bucket start in epoch ms) in one
        request (one per slice of the period, ``GRID_SLICES`` at once, when it has more than
        ``SHORT_SERIES`` buckets), its buckets bounded by ``GRID_BUCKETS`` (past the engine's
        search.max_buckets the whole search fails, a 503 the client retries): the period's
        buckets are counted to its end (or now), and each value's or bucket's share of the room
        set from that. The field's terms outside with each one's date histogram inside when the
        values (an estimate, ``_values``) fit: on the bench's 1M events a third of the time of
        the other way round, which serves when there are more values than that and fewer in
        any one bucket. None when the terms asked were not all there (``sum_other_doc_count``)
        or the period has no start: the caller then walks composite pages, which read the
        period again per page (900 buckets of 30 users: seven pages)."""
        out: dict[tuple[str | None, int], int] = {}
        if where.start is None:
            return None
        end = where.end or datetime.now(UTC)
        count = max(_bucket_count(where.start, end, interval, tz), 1)
        if count > GRID_BUCKETS:
            return None
        room = GRID_BUCKETS // (count + 1)  # terms outside or inside, and histogram buckets
        outside = self._values(where, end, field) <= room if field else False
        cuts = _cuts(where.start, end, interval, tz, GRID_SLICES if count > SHORT_SERIES else 1)
        ask = [partial(self._grid_part, replace(where, start=first, end=last), interval, tz,
                       field, room, outside)
               for first, last in zip([where.start, *cuts], [*cuts, where.end], strict=True)]
        if len(ask) == 1:
            parts = [ask[0]()]
        else:
            with ThreadPoolExecutor(max_workers=len(ask)) as pool:
                parts = list(pool.map(lambda part: part(), ask))
        for part in parts:
            if part is None:
                if outside and field:  # more values than the count said: ask it again
                    self._layouts.pop(self._layout_key(where, end, field), None)
                return None
            out.update(part)
        return out

    @staticmethod
    def _layout_key(where: Where, end: datetime, field: str) -> tuple[Any, ...]:
        assert where.start is not None
        span = round((end - where.start).total_seconds() / 3600)
        return (field, replace(where, start=None, end=None), span)

    def _values(self, where: Where, end: datetime, field: str) -> int:
        """About how many values of ``field`` the period holds (``cardinality``), remembered
        ``LAYOUT_SECONDS`` per question and span: it only picks ``_grid``'s layout, whose
        answer is checked (``sum_other_doc_count``), so an old estimate costs at most one
        slower request and is asked again then, never a wrong number. Asked afresh, it was a
        search of 40-60 ms before every long series (1M events, a 30-day period)."""
        key = self._layout_key(where, end, field)
        known = self._recall(key)
        if known is not None:
            return known
        sizing = self._agg_search(where)
        sizing.aggs.metric("values", "cardinality", field=field,
                           precision_threshold=PRECISION_THRESHOLD)
        sized = self._run(sizing)
        values = int(sized.aggregations["values"].value) if sized is not None else 0
        self._remember(key, values)
        return values

    def _recall(self, key: tuple[Any, ...]) -> int | None:
        """What ``_remember`` noted under ``key`` less than ``LAYOUT_SECONDS`` ago."""
        known = self._layouts.get(key)
        if known is not None and time.monotonic() - known[1] < LAYOUT_SECONDS:
            return known[0]
        return None

    def _remember(self, key: tuple[Any, ...], value: int) -> None:
        if len(self._layouts) >= LAYOUTS:
            self._layouts.clear()
        self._layouts[key] = (value, time.monotonic())

    def _grid_part(self, where: Where, interval: Interval, tz: str, field: str | None,
                   room: int, outside: bool) -> dict[tuple[str | None, int], int] | None:
        """One slice's grid (see ``_grid``), None when values were left out."""
        search = self._agg_search(where)
        histogram = self._time_source(interval, tz, min_doc_count=1)
        values = {"field": field, "size": room, "shard_size": room}
        if not field:
            search.aggs.bucket("t", histogram)
            keep = ["t.buckets.key", "t.buckets.doc_count"]
        elif outside:
            search.aggs.bucket("k", "terms", **values).bucket("t", histogram)
            keep = ["k.sum_other_doc_count", "k.buckets.key", "k.buckets.t.buckets.key",
                    "k.buckets.t.buckets.doc_count"]
        else:
            search.aggs.bucket("t", histogram).bucket("k", "terms", **values)
            keep = ["t.buckets.key", "t.buckets.k.sum_other_doc_count", "t.buckets.k.buckets.key",
                    "t.buckets.k.buckets.doc_count"]
        # Only the keys and counts come back (``filter_path``): a date histogram's buckets
        # each carry their key as text too, two thirds of a 2.7 MB answer. Read as the plain
        # response: the DSL's wrapper around each of 30,000 buckets costs more than the engine
        # spends finding them. Empty parts of the answer are left out altogether.
        search = search.params(filter_path=",".join(f"aggregations.{k}" for k in keep))
        response = self._run(search)
        found = response.to_dict().get("aggregations", {}) if response is not None else {}
        out: dict[tuple[str | None, int], int] = {}
        if not field:
            return {(None, int(b["key"])): int(b["doc_count"])
                    for b in found.get("t", {}).get("buckets", [])}
        if outside:
            terms = found.get("k", {})
            if terms.get("sum_other_doc_count"):
                return None
            for v in terms.get("buckets", []):
                for b in v.get("t", {}).get("buckets", []):
                    out[(str(v["key"]), int(b["key"]))] = int(b["doc_count"])
            return out
        for b in found.get("t", {}).get("buckets", []):
            terms = b.get("k", {})
            if terms.get("sum_other_doc_count"):
                return None
            for v in terms.get("buckets", []):
                out[(str(v["key"]), int(b["key"]))] = int(v["doc_count"])
        return out

    def _series(self, where: Where, interval: Interval, tz: str,
                field: str | None) -> dict[tuple[str | None, int], int]:
        """Events per (value of the engine ``field`` or None, bucket start in epoch ms), asked in
        parts (``_in_parts``)."""
        out: dict[tuple[str | None, int], int] = {}
        for part in self._in_parts(where, interval, tz, ("series", field),
                                   lambda w: self._series_asked(w, interval, tz, field)):
            out.update(part)
        return out

    def _in_parts(self, where: Where, interval: Interval, tz: str, question: tuple[Any, ...],
                  ask: Callable[[Where], dict[Any, Any]]) -> list[dict[Any, Any]]:
        """``ask``'s answers over the parts of the period, each of whole buckets.

        A period that reaches now is mostly settled: its whole buckets before the current one
        change only when an event arrives late. Those are kept (``_settled``) and read again
        only when the events between their bounds are no longer as many; the current bucket
        (and a partial first one) are asked each time. On one index every new event drops
        the engine's own request cache, so a page polled after one asked its month again:
        1M events, 60-170 ms per series. Answers keyed by bucket (a series, a daily tally)
        hold whole buckets per part, so the parts add up. The first time, the period is asked
        whole (``_first_ask``)."""
        span = self._settled_span(where, interval, tz)
        if span is None:
            return [ask(where)]
        first, cut = span
        if self._first_ask((*question, interval, tz), replace(where, start=first, end=cut)):
            return [ask(where)]
        parts = []
        if where.start is not None and first is not None and where.start < first:
            parts.append(ask(replace(where, end=first)))
        parts.append(self._settled(replace(where, start=first, end=cut),
                                   (*question, interval, tz), ask))
        if where.end is None or where.end > cut:
            parts.append(ask(replace(where, start=cut)))
        return parts

    def _first_ask(self, question: tuple[Any, ...], settled: Where) -> bool:
        """Whether ``question`` is asked for the first time (in ``LAYOUT_SECONDS``) over a
        period whose settled part is ``settled``, noting that it was. The first time it is
        asked whole: one search, where the parts are two or three and a count, which only pay
        when asked again. A page's first request after start meets an engine still compiling
        its search code: at 1M events on five weekly indices the site page's first request
        asked 23 searches, its series and freshness in parts, and took 1.6-2.2 s; whole, 16
        and 1.3-1.5 s."""
        key = _kept_key(question, settled)
        with self._kept_lock:  # checked and noted at once: of two threads at once, one asks whole
            if key in self._kept or self._recall(("asked", *key)) is not None:
                return False
            self._remember(("asked", *key), 1)
            return True

    @staticmethod
    def _settled_span(where: Where, interval: Interval,
                      tz: str) -> tuple[datetime | None, datetime] | None:
        """The whole buckets of the period before the bucket now (or its end) falls in (from
        the first event when the period has no start); None when there are none."""
        now = datetime.now(UTC)
        cut = bucket_start(min(where.end or now, now), interval, tz)
        if where.start is None:
            return None, cut
        first = bucket_start(where.start, interval, tz)
        if first < where.start:
            first = next_start(first, interval, tz)
        return (first, cut) if first < cut else None

    def _settled(self, where: Where, question: tuple[Any, ...],
                 ask: Callable[[Where], dict[Any, Any]]) -> dict[Any, Any]:
        """A settled part's answer, kept while the events between its bounds (every event,
        whatever the question, so any arrival or removal there shows) are as many as when it
        was asked. They are counted before it is asked: an event that lands meanwhile makes
        the next count differ, never a kept answer that misses it. Events are only ever added
        (a removal is a whole backing index, past retention), so the same count means the same
        events, unless as many arrive late as an index's deletion takes away between two
        requests."""
        assert where.end is not None
        events = self._events_between(where.start, where.end)
        key = _kept_key(question, where)
        with self._kept_lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == events:
                self._kept.move_to_end(key)
                return kept[1]
        answer = ask(where)
        with self._kept_lock:
            self._kept.pop(key, None)
            self._kept[key] = (events, answer, _keys_in(answer))
            held = sum(kept[2] for kept in self._kept.values())
            while self._kept and (len(self._kept) > KEPT_ANSWERS or held > KEPT_KEYS):
                held -= self._kept.popitem(last=False)[1][2]
        return answer

    def _events_between(self, start: datetime | None, end: datetime) -> int:
        """Every event from ``start`` (or the first) to ``end`` (bots too). Within one
        request's answer (``AS_OF``) a count asked after the request began serves every
        question of the same bounds, also one asked meanwhile from another thread: the site
        page's panels checked the same month eight to twelve times."""
        since = AS_OF.get()
        if since is None:
            return self._count_between(start, end)
        key = (start, end)
        with self._kept_lock:
            known = self._counts.get(key)
            mine = known is None or known[0] < since
            if mine:
                if len(self._counts) >= LAYOUTS:
                    self._counts.clear()
                known = self._counts[key] = (time.monotonic(), Future())
        assert known is not None
        if mine:
            try:
                known[1].set_result(self._count_between(start, end))
            except BaseException as exc:
                known[1].set_exception(exc)
                raise
        return int(known[1].result())

    def _count_between(self, start: datetime | None, end: datetime) -> int:
        """The index counts them (the points of the timestamp), a few milliseconds."""
        bounds = {"lt": end.isoformat(), "format": "strict_date_optional_time"}
        if start is not None:
            bounds["gte"] = start.isoformat()
        search = self._search().query(Q("range", **{registry.TIMESTAMP: bounds})).extra(
            size=0, track_total_hits=True)
        response = self._run(search)
        return int(response.hits.total.value) if response is not None else 0

    def _series_asked(self, where: Where, interval: Interval, tz: str,
                      field: str | None) -> dict[tuple[str | None, int], int]:
        """``_series`` asked of the engine, whole. A series of at most ``SHORT_SERIES`` buckets
        (a page's 30 days) asks for one composite page first: one request, as a cold engine's
        first page needs, when it holds them all.
        A longer one, or one that did not fit, is one request sized first (``_grid``), and
        composite pages when that does not hold them all either."""
        sources = [{"t": self._time_source(interval, tz)}]
        if field:
            sources.insert(0, {"k": A("terms", field=field)})

        def keyed(found: list[Any]) -> dict[tuple[str | None, int], int]:
            return {(str(b["key"]["k"]) if field else None, int(b["key"]["t"])):
                    int(b["doc_count"]) for b in found}

        if where.start is None:  # no sizing without a start: every page
            return keyed(self._composite(self._agg_search(where), sources) or [])
        end = where.end or datetime.now(UTC)
        if _bucket_count(where.start, end, interval, tz) <= SHORT_SERIES:
            found = self._composite(self._agg_search(where), sources, pages=1)
            if found is not None:
                return keyed(found)
        grid = self._grid(where, interval, tz, field)
        if grid is not None:
            return grid
        return keyed(self._composite(self._agg_search(where), sources) or [])

    def active_pairs(self, where: Where, interval: Interval, tz: str) -> set[tuple[str, int]]:
        return {(str(user), t) for user, t in self._series(where, interval, tz, registry.USER_ID)}

    def user_counts(self, where: Where, interval: Interval, tz: str) -> dict[int, int]:
        # Counted from the exact pairs: a cardinality per bucket would be an estimate.
        return users_per_bucket(self._series(where, interval, tz, registry.USER_ID))

    def counts(self, where: Where, field: str | None, interval: Interval,
               tz: str) -> dict[tuple[str | None, int], int]:
        return self._series(where, interval, tz, registry.FIELDS[field].es if field else None)

    def latest_states(self, where: Where, targets: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(targets))
        if not wanted:
            return {}
        state = "eventtrail.target.state"
        search = self._agg_search(where, Q("exists", field=state),
                                  self._only("eventtrail.target.id", wanted))
        search.aggs.bucket("t", "terms", field="eventtrail.target.id", include=wanted,
                           size=len(wanted)).metric(
            "last", "top_hits", size=1, _source=[state],
            sort=[{registry.TIMESTAMP: "desc"}, {registry.TIEBREAKER: "desc"}])
        response = self._run(search)
        out: dict[str, str] = {}
        if response is None:
            return out
        for b in response.aggregations.t.buckets:
            hit = b["last"]["hits"]["hits"][0]["_source"].to_dict()
            out[str(b["key"])] = hit["eventtrail"]["target"]["state"]
        return out

    def top_users(self, where: Where, size: int) -> list[tuple[str, str | None, int]]:
        parts = self._kept_parts(where, ("members",),
                                 lambda w: self._members(w, MAX_KEYS, crowded=True))
        if parts is None:
            return [(user, name, events)
                    for user, (events, name) in self._members(where, size).items()]
        events: dict[str, int] = {}
        names: dict[str, str | None] = {}
        for part in parts:
            for user, (n, name) in part.items():
                events[user] = events.get(user, 0) + n
                names[user] = max((given for given in (names.get(user), name)
                                   if given is not None), default=None)
        ranked = sorted(events, key=lambda u: (-events[u], u))[:size]
        return [(user, names[user], events[user]) for user in ranked]

    def _members(self, where: Where, size: int, *,
                 crowded: bool = False) -> dict[str, tuple[int, str | None]]:
        """The ``size`` users with most events: (events, greatest name), most first; with
        ``crowded``, _Crowded when there were more."""
        search = self._agg_search(where)
        search.aggs.bucket("u", "terms", field=registry.USER_ID, size=size,
                           shard_size=max(size * 10, 1000),
                           order=[{"_count": "desc"}, {"_key": "asc"}]).bucket(
            "name", "terms", field="user.name", size=1, order={"_key": "desc"})
        response = self._run(search)
        out: dict[str, tuple[int, str | None]] = {}
        if response is None:
            return out
        if crowded and response.aggregations.u.sum_other_doc_count:
            raise _Crowded
        for b in response.aggregations.u.buckets:
            names = b["name"]["buckets"]
            out[str(b["key"])] = (int(b["doc_count"]), str(names[0]["key"]) if names else None)
        return out

    def freshness(self, where: Where) -> tuple[int, datetime | None]:
        # Every poll asks this first (its ETag): the days before today are kept as they are
        # (``_in_parts``), today asked; 26-30 ms whole after each new event at 1M events.
        found = self._in_parts(where, UTC_DAY, "UTC", ("freshness",), self._freshness)
        newest = max((f["newest"] for f in found if "newest" in f), default=None)
        return (sum(f["count"] for f in found),
                datetime.fromtimestamp(newest / 1000, UTC) if newest is not None else None)

    def _freshness(self, where: Where) -> dict[str, int]:
        """How many events match and the newest one's epoch ms ("newest", when there is one)."""
        search = self._agg_search(where).extra(track_total_hits=True)
        search.aggs.metric("newest", "max", field=registry.TIMESTAMP)
        response = self._run(search)
        if response is None:
            return {"count": 0}
        newest = response.aggregations.newest.value
        found = {"count": int(response.hits.total.value)}
        if newest is not None:
            found["newest"] = int(newest)
        return found
