"""The OpenAPI description of the API, generated from the field registry."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from eventtrail.stores import fields as registry
from eventtrail.stores.query import CALENDAR, MAX_BUCKETS, MAX_WINDOW, METRICS

_TYPES = {
    "keyword": OpenApiTypes.STR,
    "integer": OpenApiTypes.INT,
    "number": OpenApiTypes.NUMBER,
    "date": OpenApiTypes.STR,
    "boolean": OpenApiTypes.BOOL,
    "ip": OpenApiTypes.STR,
}

COMMON = """
**Filters** are `field__lookup=value` on the fields below: no suffix is `exact`; `in` takes a
comma-separated list; `not` excludes a value (events without the field are kept); `exists` takes
true or false; `gt`, `gte`, `lt`, `lte` apply to numbers and dates. Dates are ISO-8601 (UTC when no
offset) or date math: `now-10d`, `now-1h`, `now/d` (rounded down), `now-1d/d`.

**Time range**: `from` (inclusive) and `to` (exclusive) on `@timestamp`, same date syntax.

**Full text** `q` searches {text} case-insensitively: a term matches anywhere in a field, `abc*`
matches fields that start with abc, `"a phrase"` is one term with its spaces, terms are all
required (`+term` too), `a | b` needs either, `-term` excludes. Anything else is ignored: a
query never fails for its syntax.

**Scope**: ordinary users see only their own events, whatever they filter (their pseudonymised
id when pseudonymisation is on); community moderators also see their communities' events; staff
and holders of `eventtrail.view_all_events` see everything. Bot traffic is left out unless
`include_bots=true`.

Errors are 400 `{{"errors": [{{"param": ..., "message": ...}}]}}`; an unreachable store is 503.
""".format(text=", ".join(f"`{n}`" for n in registry.TEXT_FIELDS))

LIST = (
    "Events, newest first by default.\n\n**Sorting**: `sort=-@timestamp,user.id` on the sortable "
    "fields; `event.id` is always appended as the tiebreaker. Missing values sort last.\n\n"
    "**Paging**: an opaque signed `cursor` by default (`next` and `previous` links), valid only "
    "for the query that made it, at any depth; or `page` numbers over the first "
    f"{MAX_WINDOW} hits, with `count` capped there (`count_is_capped`).\n\n"
    "**Fields**: `fields=@timestamp,event.action` returns only these fields.\n" + COMMON
)

AGGREGATE = (
    "Buckets of events with metrics.\n\n`group_by` one or two groupable fields: top `size` "
    f"buckets (at most {MAX_BUCKETS}) by count, then key. `mode=composite` pages through every "
    "bucket in key order, with the `after` cursor from the previous answer. `interval` makes a "
    f"date histogram on `@timestamp`: calendar ({', '.join(CALENDAR)}, in the `tz` time zone) "
    "or fixed (`30m`, `6h`, `1d`, aligned on UTC); alone it fills empty buckets from the first "
    "to the last event or the `from`/`to` bounds; with `group_by` it needs `mode=composite` "
    "(no filling).\n\n"
    f"`metric`: {', '.join(METRICS)} (count is always given).\n\n"
    "**Approximations**: with the Elasticsearch store, `unique_users` is a cardinality "
    "estimate (HyperLogLog++, exact below about 3,000 distinct users, within a few percent "
    "above), and `percentiles_duration` comes from a TDigest sketch (close to, not always equal "
    "to, the interpolated value); the database store computes both exactly. Terms counts are "
    "exact on a single-shard data stream.\n" + COMMON
)


def _filter_parameters() -> list[OpenApiParameter]:
    params: list[OpenApiParameter] = []
    for spec in registry.filterable():
        for lookup in registry.LOOKUPS:
            if lookup not in spec.lookups:
                continue
            name = spec.name if lookup == "exact" else f"{spec.name}__{lookup}"
            kind = _TYPES[spec.kind]
            if lookup == "exists":
                kind = OpenApiTypes.BOOL
            elif lookup == "in":
                kind = OpenApiTypes.STR
            params.append(OpenApiParameter(name, kind, description=f"{lookup}: {spec.description}"))
    return params


def _common() -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "from", OpenApiTypes.STR, description="Start (inclusive): ISO-8601 or now-1d/d."
        ),
        OpenApiParameter("to", OpenApiTypes.STR, description="End (exclusive): ISO-8601 or now."),
        OpenApiParameter("q", OpenApiTypes.STR, description="Full-text search (see above)."),
        OpenApiParameter("include_bots", OpenApiTypes.BOOL, description="Include bot traffic."),
    ]


def list_parameters() -> list[OpenApiParameter]:
    return [
        *_common(),
        OpenApiParameter(
            "sort", OpenApiTypes.STR, description="Sortable: " + ", ".join(registry.sortable())
        ),
        OpenApiParameter(
            "fields", OpenApiTypes.STR, description="Comma-separated fields to return."
        ),
        OpenApiParameter("page_size", OpenApiTypes.INT, description="Hits per page."),
        OpenApiParameter("page", OpenApiTypes.INT, description="Page number (first 10,000 hits)."),
        OpenApiParameter("cursor", OpenApiTypes.STR, description="From a next/previous link."),
        *_filter_parameters(),
    ]


def aggregate_parameters() -> list[OpenApiParameter]:
    return [
        *_common(),
        OpenApiParameter(
            "group_by",
            OpenApiTypes.STR,
            description="One or two of: " + ", ".join(registry.groupable()),
        ),
        OpenApiParameter("size", OpenApiTypes.INT, description=f"Buckets, at most {MAX_BUCKETS}."),
        OpenApiParameter("mode", OpenApiTypes.STR, enum=["terms", "composite"]),
        OpenApiParameter("after", OpenApiTypes.STR, description="Composite cursor."),
        OpenApiParameter(
            "interval", OpenApiTypes.STR, description="hour, day, week, month, 30m, 6h..."
        ),
        OpenApiParameter("tz", OpenApiTypes.STR, description="IANA time zone, e.g. Europe/Paris."),
        OpenApiParameter(
            "metric", OpenApiTypes.STR, description="Comma-separated: " + ", ".join(METRICS)
        ),
        *_filter_parameters(),
    ]


class ErrorItemSerializer(serializers.Serializer[Any]):
    param = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer[Any]):
    errors = ErrorItemSerializer(many=True)  # type: ignore[assignment]


class EventPageSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField(required=False, help_text="Page mode only, capped.")
    count_is_capped = serializers.BooleanField(required=False)
    page = serializers.IntegerField(required=False)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = serializers.ListField(child=serializers.DictField(), help_text="ECS documents.")


class BucketSerializer(serializers.Serializer[Any]):
    key = serializers.DictField()
    count = serializers.IntegerField()
    unique_users = serializers.IntegerField(required=False)
    avg_duration = serializers.FloatField(required=False, allow_null=True)
    percentiles_duration = serializers.DictField(required=False)


class AggregateSerializer(serializers.Serializer[Any]):
    group_by = serializers.ListField(child=serializers.CharField())
    interval = serializers.CharField(allow_null=True)
    tz = serializers.CharField()
    metrics = serializers.ListField(child=serializers.CharField())
    buckets = BucketSerializer(many=True)
    after = serializers.CharField(required=False, allow_null=True)
    next = serializers.URLField(required=False, allow_null=True)
