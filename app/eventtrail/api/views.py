"""Thin DRF views: parse the query, scope it to the caller, ask the store, serialise."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from eventtrail.api import docs
from eventtrail.conf import get_config
from eventtrail.stores import Store, StoreUnavailable, get_store
from eventtrail.stores.base import render_time
from eventtrail.stores.query import (
    AggQuery,
    ListQuery,
    QueryError,
    parse_aggregate,
    parse_list,
    scope_for,
    sign_cursor,
)


class EventsThrottle(ScopedRateThrottle):
    """Scoped throttle whose rate falls back to EVENTTRAIL["API_THROTTLE_RATE"]."""

    def get_rate(self) -> str | None:
        try:
            return super().get_rate()
        except ImproperlyConfigured:
            rate: str | None = get_config()["API_THROTTLE_RATE"]
            return rate


def _link(request: Request, **changes: Any) -> str:
    params = request.query_params.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value is not None:
            params[key] = str(value)
    return request.build_absolute_uri(request.path + ("?" + params.urlencode() if params else ""))


class StoreView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [EventsThrottle, UserRateThrottle]
    throttle_scope = "eventtrail"

    def store(self) -> Store:
        return get_store()

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, QueryError):
            return Response({"errors": [{"param": exc.param, "message": exc.message}]}, status=400)
        if isinstance(exc, StoreUnavailable):
            return Response({"errors": [{"param": None, "message": str(exc)}]}, status=503)
        return super().handle_exception(exc)


class EventListView(StoreView):
    @extend_schema(
        operation_id="events_list",
        summary="List events",
        description=docs.LIST,
        parameters=docs.list_parameters(),
        responses={
            200: docs.EventPageSerializer,
            400: docs.ErrorSerializer,
            503: docs.ErrorSerializer,
        },
    )
    def get(self, request: Request) -> Response:
        store = self.store()
        query: ListQuery = parse_list(request.query_params, scope_for(request.user), store.name)
        page = store.search(query)
        body: dict[str, Any] = {}
        if query.page is not None:
            body["count"] = page.total
            body["count_is_capped"] = page.capped
            body["page"] = query.page
            body["next"] = _link(request, page=query.page + 1) if page.more else None
            body["previous"] = _link(request, page=query.page - 1) if query.page > 1 else None
        else:
            reverse = bool(query.cursor and query.cursor.reverse)
            has_next = page.more if not reverse else True
            has_previous = page.more if reverse else query.cursor is not None
            body["next"] = body["previous"] = None
            if page.hits and has_next:
                token = sign_cursor(page.sort_values[-1], False, query.digest)
                body["next"] = _link(request, cursor=token, page=None)
            if page.hits and has_previous:
                token = sign_cursor(page.sort_values[0], True, query.digest)
                body["previous"] = _link(request, cursor=token, page=None)
        body["results"] = page.hits
        return Response(body)


class EventAggregateView(StoreView):
    @extend_schema(
        operation_id="events_aggregate",
        summary="Aggregate events",
        description=docs.AGGREGATE,
        parameters=docs.aggregate_parameters(),
        responses={
            200: docs.AggregateSerializer,
            400: docs.ErrorSerializer,
            503: docs.ErrorSerializer,
        },
    )
    def get(self, request: Request) -> Response:
        store = self.store()
        query: AggQuery = parse_aggregate(request.query_params, scope_for(request.user), store.name)
        result = store.aggregate(query)
        for bucket in result.buckets:
            if "@timestamp" in bucket["key"]:
                bucket["key"]["@timestamp"] = render_time(bucket["key"]["@timestamp"], query.tz)
        body: dict[str, Any] = {
            "group_by": list(query.group_by),
            "interval": query.interval.label if query.interval else None,
            "tz": query.tz,
            "metrics": list(query.metrics),
            "buckets": result.buckets,
        }
        if query.composite:
            after = sign_cursor(result.after, False, query.digest) if result.after else None
            body["after"] = after
            body["next"] = _link(request, after=after) if after else None
        return Response(body)
