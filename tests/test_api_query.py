"""The query parser: parameters in, one frozen validated query out, or a QueryError naming them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from django.http import QueryDict
from eventtrail.stores import fields as registry
from eventtrail.stores.query import (
    Filter,
    Interval,
    QueryError,
    Scope,
    SortKey,
    Term,
    TextQuery,
    parse_aggregate,
    parse_date,
    parse_interval,
    parse_list,
    parse_text,
    read_cursor,
    sign_cursor,
)

NOW = datetime(2026, 11, 29, 15, 42, 7, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("now", NOW),
        ("now-10d", datetime(2026, 11, 19, 15, 42, 7, 123000, tzinfo=UTC)),
        ("now-1h", datetime(2026, 11, 29, 14, 42, 7, 123000, tzinfo=UTC)),
        ("now/d", datetime(2026, 11, 29, tzinfo=UTC)),
        ("now-1d/d", datetime(2026, 11, 28, tzinfo=UTC)),
        ("now+2h/h", datetime(2026, 11, 29, 17, tzinfo=UTC)),
        ("now/w", datetime(2026, 11, 23, tzinfo=UTC)),
        ("now-1M/M", datetime(2026, 10, 1, tzinfo=UTC)),
        ("now-1y", datetime(2025, 11, 29, 15, 42, 7, 123000, tzinfo=UTC)),
        ("2026-10-01", datetime(2026, 10, 1, tzinfo=UTC)),
        ("2026-10-01T12:00:00+02:00", datetime(2026, 10, 1, 10, tzinfo=UTC)),
        ("2026-10-01T12:00:00Z", datetime(2026, 10, 1, 12, tzinfo=UTC)),
    ],
)
def test_dates(raw, want):
    assert parse_date("from", raw, NOW) == want


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "now-1x",
        "now-d",
        "2026-02-30",
        "now//d",
        "",
        "now-99999999y",
        "now+999999999999d",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_bad_dates(raw):
    with pytest.raises(QueryError) as error:
        parse_date("from", raw, NOW)
    assert error.value.param == "from"


def test_month_math_clamps_the_day():
    assert parse_date("to", "now-1M", datetime(2026, 3, 31, tzinfo=UTC)) == datetime(
        2026, 2, 28, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("firefox", TextQuery(((Term("firefox"),),), ())),
        ("Firefox LINUX", TextQuery(((Term("firefox"),), (Term("linux"),)), ())),
        ('"Elastic Search" -bot', TextQuery(((Term("elastic search"),),), (Term("bot"),))),
        ("a | b c", TextQuery(((Term("a"), Term("b")), (Term("c"),)), ())),
        ("+art* -x*", TextQuery(((Term("art", prefix=True),),), (Term("x", prefix=True),))),
        ('"unbalanced', TextQuery(((Term("unbalanced"),),), ())),
        ("| | -", None),
        ('""   ***  +  -', None),
        ("(a AND b)~2", TextQuery(((Term("(a"),), (Term("and"),), (Term("b)~2"),)), ())),
    ],
)
def test_text(raw, want):
    assert parse_text(raw) == want


def test_nul_is_dropped_from_q():
    query = parse_list({"q": "fire\x00fox"})
    assert query.where.text == TextQuery(((Term("firefox"),),), ())


def test_text_is_bounded():
    text = parse_text(" ".join(f"t{i}" for i in range(50)) + " " + "x" * 500)
    assert text is not None and len(text.groups) == 10
    assert all(len(t.text) <= 100 for g in text.groups for t in g)


def test_filters_are_typed_and_validated():
    query = parse_list(
        {
            "event.action__in": "a,b,a",
            "http.response.status_code__gte": "400",
            "eventtrail.video.position__lt": "1.5",
            "user.id__exists": "false",
            "eventtrail.bot": "true",
            "source.ip": "::ffff:10.0.0.1",
            "@timestamp__gt": "2026-10-01",
        }
    )
    assert set(query.where.filters) == {
        Filter("event.action", "in", ("a", "b")),
        Filter("http.response.status_code", "gte", 400),
        Filter("eventtrail.video.position", "lt", 1.5),
        Filter("user.id", "exists", False),
        Filter("eventtrail.bot", "exact", True),
        Filter("source.ip", "exact", "::ffff:a00:1"),
        Filter("@timestamp", "gt", datetime(2026, 10, 1, tzinfo=UTC)),
    }


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"nope": "1"}, "nope", "unknown field"),
        ({"event.action__regex": "x"}, "event.action__regex", "unknown lookup"),
        ({"user.id__lt": "5"}, "user.id__lt", "not allowed"),
        ({"tags": "bot"}, "tags", "cannot be filtered"),
        ({"event.duration": "1.5"}, "event.duration", "integer"),
        ({"event.duration__lt": str(2**63)}, "event.duration__lt", "out of range"),
    ({"eventtrail.video.position__gte": "-5e223"}, "eventtrail.video.position__gte", "32-bit"),
        ({"eventtrail.video.position": "nan"}, "eventtrail.video.position", "finite"),
        ({"source.ip": "999.1.1.1"}, "source.ip", "IP"),
        ({"eventtrail.bot": "perhaps"}, "eventtrail.bot", "boolean"),
        ({"event.action__in": ",,"}, "event.action__in", "one or more"),
        ({"from": "2026-10-02", "to": "2026-10-01"}, "to", "before"),
        ({"page_size": "0"}, "page_size", "at least 1"),
        ({"page_size": "1001"}, "page_size", "over the maximum of 1000"),
        ({"page_size": "ten"}, "page_size", "integer"),
        ({"page": "201"}, "page", "first 10000"),
        ({"page": "1", "cursor": "x"}, "page", "not both"),
    ({"user.name": "a\x00b"}, "user.name", "NUL"),
        ({"sort": "-@timestamp,@timestamp"}, "sort", "twice"),
        ({"cursor": "nonsense"}, "cursor", "tampered"),
    ],
)
def test_list_errors(params, param, words):
    with pytest.raises(QueryError) as error:
        parse_list(params)
    assert error.value.param == param
    assert words in error.value.message


def test_sort_always_ends_with_the_tiebreaker():
    assert parse_list({}).sort == (SortKey("@timestamp", True), SortKey("event.id", True))
    assert parse_list({"sort": "user.id,-@timestamp"}).sort == (
        SortKey("user.id"),
        SortKey("@timestamp", True),
        SortKey("event.id"),
    )
    assert parse_list({"sort": "-event.id,user.id"}).sort == (
        SortKey("event.id", True),
        SortKey("user.id"),
    )


def test_page_size_cap_follows_the_setting(settings):
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "MAX_PAGE_SIZE": 20}
    assert parse_list({}).page_size == 20
    with pytest.raises(QueryError):
        parse_list({"page_size": "21"})


def test_query_is_frozen_and_repeated_params_take_the_last():
    query = parse_list(QueryDict("event.action=a&event.action=b&page_size=3"))
    assert query.where.filters == (Filter("event.action", "exact", "b"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.page_size = 4  # type: ignore[misc]


def test_cursor_is_bound_to_its_query_scope_and_store():
    first = parse_list({"event.action": "a"}, Scope("3"), "database")
    token = sign_cursor(["2026-10-01T00:00:00+00:00", "x"], False, first.digest)
    again = parse_list(
        {"event.action": "a", "cursor": token, "page_size": "7"}, Scope("3"), "database"
    )
    assert again.cursor is not None and again.cursor.values[1] == "x"
    for params, scope, store in [
        ({"event.action": "b"}, Scope("3"), "database"),
        ({"event.action": "a"}, Scope("4"), "database"),
        ({"event.action": "a"}, Scope("3"), "elasticsearch"),
        ({"event.action": "a", "sort": "user.id"}, Scope("3"), "database"),
    ]:
        with pytest.raises(QueryError, match="another query"):
            parse_list({**params, "cursor": token}, scope, store)
    with pytest.raises(QueryError, match="tampered"):
        read_cursor("cursor", token[:-2] + "zz", first.digest)


def test_relative_bounds_keep_their_cursor_valid():
    first = parse_list({"from": "now-1h"})
    token = sign_cursor(["2026-10-01T00:00:00+00:00", "x"], False, first.digest)
    assert parse_list({"from": "now-1h", "cursor": token}).cursor is not None


def test_bots_follow_the_setting_unless_asked(settings):
    assert parse_list({}).where.include_bots is False
    assert parse_list({"include_bots": "true"}).where.include_bots is True
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "INCLUDE_BOTS": True}
    assert parse_list({}).where.include_bots is True
    assert parse_list({"include_bots": "false"}).where.include_bots is False


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("hour", Interval(calendar="hour")),
        ("month", Interval(calendar="month")),
        ("30m", Interval(seconds=1800)),
        ("6h", Interval(seconds=21600)),
        ("2d", Interval(seconds=172800)),
    ],
)
def test_intervals(raw, want):
    assert parse_interval(raw) == want
    assert want.label == raw


@pytest.mark.parametrize("raw", ["0m", "fortnight", "1.5h", "10s", "-1h", "99999m"])
def test_bad_intervals(raw):
    with pytest.raises(QueryError, match="not an interval"):
        parse_interval(raw)


def test_aggregate_query():
    query = parse_aggregate(
        {"group_by": "event.action,user.id", "metric": "unique_users", "size": "20"}
    )
    assert query.group_by == ("event.action", "user.id")
    assert query.metrics == ("count", "unique_users")
    assert query.size == 20 and not query.composite and query.tz == "UTC"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "group_by"),
        ({"group_by": "message"}, "group_by"),
        ({"group_by": "event.id"}, "group_by"),
        ({"group_by": "user.id,user.id"}, "group_by"),
        ({"group_by": "user.id", "interval": "day"}, "interval"),
        ({"interval": "day", "mode": "composite"}, "mode"),
        ({"group_by": "user.id", "mode": "buckets"}, "mode"),
        ({"group_by": "user.id", "after": "x"}, "after"),
        ({"group_by": "user.id", "size": "0"}, "size"),
        ({"interval": "day", "tz": "Nowhere/Town"}, "tz"),
    ],
)
def test_aggregate_errors(params, param):
    with pytest.raises(QueryError) as error:
        parse_aggregate(params)
    assert error.value.param == param


def test_registry_drives_everything():
    for name, spec in registry.FIELDS.items():
        assert spec.name == name and spec.es == name
        if spec.sortable or spec.groupable:
            assert spec.column is not None
        if spec.kind in {"keyword", "boolean", "ip"}:
            assert not spec.lookups & registry.RANGE
    assert "event.id" in registry.sortable() and "event.id" not in registry.groupable()
    assert set(registry.TEXT_FIELDS) <= set(registry.FIELDS)


def test_dates_outside_the_supported_range_are_a_400_not_an_overflow():
    from eventtrail.stores.query import QueryError, parse_date

    for raw in ("9999-12-30", "0001-01-01", "1899-12-31T23:59:59"):
        with pytest.raises(QueryError) as err:
            parse_date("from", raw)
        assert err.value.param == "from" and "outside the supported dates" in err.value.message
    assert parse_date("to", "2026-11-29").year == 2026
