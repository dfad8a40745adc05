"""Every analytic, on every store, against a plain-Python oracle over the same events."""
from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from community.models import Community
from django.contrib.auth import get_user_model
from eventtrail.delivery.sinks import DatabaseSink
from eventtrail.models import StoredEvent
from eventtrail.stores.database import reset_rollups
from rest_framework.test import APIClient

from tests.support import analytics_data as data
from tests.support import analytics_fixtures as fixtures

pytestmark = pytest.mark.django_db(databases=["default", "events"])
UNTIL = fixtures.UNTIL


@pytest.fixture
def events(history):
    return history["events"]


def client_for(username: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(username=username))
    return client


def get(name: str, params: dict[str, Any], user: str = "analyst", status: int = 200) -> Any:
    response = client_for(user).get(f"/api/analytics/{name}/?{urlencode(params)}")
    assert response.status_code == status, response.content[:500]
    return response.json()


START = UNTIL - timedelta(days=14)
PERIOD = {"from": START.isoformat(), "to": UNTIL.isoformat(), "interval": "day"}
DAYS = [d.isoformat() for d in data.days_between(START, UNTIL)]


def communities(events) -> list[str]:
    counts: dict[str, int] = {}
    for e in data.human(events, action="article.view"):
        counts[e["eventtrail.community.slug"]] = counts.get(e["eventtrail.community.slug"], 0) + 1
    return sorted(c for c in counts if c != data.CRAFT)[:3]


def authors(events) -> list[str]:
    return sorted({e["user.id"] for e in data.human(events, action="article.create")})


# --- articles ----------------------------------------------------------------------------------


def test_trending_puts_broad_and_rising_over_repeated_and_steady(store, events):
    body = get("trending", {"community": data.CRAFT, "to": UNTIL.isoformat()})
    order = [r["article"] for r in body["results"]]
    assert order == [data.BROAD, data.RISING, data.REPEATED, data.STEADY]
    want = dict(data.trending(events, data.CRAFT, UNTIL))
    for row in body["results"]:
        assert row["score"] == pytest.approx(want[row["article"]], abs=1e-3)
    steady = body["results"][-1]
    assert steady["momentum"] == pytest.approx(1.0, abs=0.15)  # as much before as now
    assert body["results"][1]["momentum"] == 4.0  # nothing before: the bound


@pytest.mark.parametrize("days,half_life", [(10, 3), (5, 1), (30, 7)])
def test_trending_in_generated_communities(store, events, days, half_life):
    for slug in communities(events):
        body = get("trending", {"community": slug, "to": UNTIL.isoformat(), "days": days,
                                "half_life": half_life, "size": 100})
        want = data.trending(events, slug, UNTIL, days, half_life)
        assert [r["article"] for r in body["results"]] == [a for a, _ in want][:100]
        for row, (_, score) in zip(body["results"], want, strict=False):
            assert row["score"] == pytest.approx(score, abs=1e-3)


def test_most_viewed_all_time_and_for_a_period(store, events):
    for slug in communities(events):
        body = get("most-viewed", {"community": slug, "size": 100})
        assert [(r["article"], r["views"], r["viewers"]) for r in body["results"]] == \
            data.most_viewed(events, community=slug)[:100]
        body = get("most-viewed", {"community": slug, "from": START.isoformat(),
                                   "to": UNTIL.isoformat(), "size": 5})
        assert [(r["article"], r["views"], r["viewers"]) for r in body["results"]] == \
            data.most_viewed(events, START, UNTIL, community=slug)[:5]
    site = get("most-viewed", {"size": 7})
    assert [(r["article"], r["views"]) for r in site["results"]] == \
        [(a, n) for a, n, _ in data.most_viewed(events)[:7]]


def test_a_users_most_viewed_articles(store, events):
    for user in authors(events)[:4]:
        body = get("user-most-viewed", {"user": user, "size": 50})
        assert [(r["article"], r["views"], r["viewers"]) for r in body["results"]] == \
            data.most_viewed(events, user=user)[:50]


def test_own_articles_by_state_replay_to_the_site_database(store, events, history):
    site = history["site_states"]
    checked = 0
    for user in authors(events):
        body = get("user-articles", {"user": user})
        got = {r["article"]: (r["state"], r["views"]) for r in body["results"]}
        assert got == data.user_articles(events, user)
        # The event log's states are the site's states, article by article.
        assert {a: s for a, (s, _) in got.items()} == \
            {a: s for a, (s, author) in site.items() if author == user}
        assert sum(body["by_state"].values()) == len(got)
        checked += len(got)
    assert checked == len(site)


def test_reading_depth_on_the_crafted_articles(store, events):
    body = get("reading-depth", {"community": data.DEPTH})
    assert body["depths"] == [25, 50, 75, 100]
    got = {r["article"]: (r["views"], r["reached"]) for r in body["results"]}
    assert got == {a: (views, list(reached)) for a, (views, reached) in data.SCROLLS.items()}
    share = {r["article"]: r["share"] for r in body["results"]}
    assert share[data.DEEP] == [1.0, 0.875, 0.625, 0.5]
    assert share[data.SKIM] == [0.6, 0.2, 0.0, 0.0]
    assert share[data.SHORT] == [1.0] * 4  # three full scrolls for two views: capped
    assert [r["article"] for r in body["results"]] == [data.DEEP, data.SKIM, data.SHORT,
                                                        data.UNREAD]
    assert [(r["article"], r["views"], r["reached"], r["share"]) for r in body["results"]] == \
        [(a, v, c, s) for a, v, c, s in data.reading_depth(events, community=data.DEPTH)]


def test_reading_depth_in_generated_communities_and_site_wide(store, events):
    for slug in communities(events)[:2]:
        body = get("reading-depth", {"community": slug, "from": START.isoformat(),
                                     "to": UNTIL.isoformat(), "size": 20})
        want = data.reading_depth(events, START, UNTIL, slug)[:20]
        assert [(r["article"], r["views"], r["reached"]) for r in body["results"]] == \
            [(a, v, c) for a, v, c, _ in want]
    site = get("reading-depth", {"size": 100})
    assert [(r["article"], r["views"], r["reached"], r["share"]) for r in site["results"]] == \
        data.reading_depth(events)[:100]


def test_video_completion_on_the_crafted_videos(store, events):
    body = get("video-completion", {"community": data.DEPTH})
    assert body["quartiles"] == [25, 50, 75, 100]
    got = [(r["video"], r["plays"], r["progress"], r["ended"], r["completion"])
           for r in body["results"]]
    assert got == [("article-9501", 6, [5, 4, 3, 2], 2, 0.3333),
                   ("article-9502", 2, [1, 0, 0, 0], 0, 0.0),
                   ("article-9503", 2, [2, 2, 2, 2], 2, 1.0)]
    assert got == data.video_completion(events, community=data.DEPTH)
    site = get("video-completion", {"from": START.isoformat(), "to": UNTIL.isoformat()})
    assert [(r["video"], r["plays"], r["progress"], r["ended"], r["completion"])
            for r in site["results"]] == data.video_completion(events, START, UNTIL)[:10]
    before = get("video-completion", {"community": data.DEPTH,
                                      "to": (UNTIL - timedelta(days=3)).isoformat()})
    assert before["results"] == []


# --- activity over time ------------------------------------------------------------------------


@pytest.mark.parametrize("community", [None, "first"])
def test_active_users(store, events, community):
    slug = communities(events)[0] if community else None
    params = {**PERIOD, **({"community": slug} if slug else {})}
    body = get("active-users", params)
    assert body["times"] == DAYS
    assert body["users"] == data.active_users(events, START, UNTIL, slug)
    for name, days in (("dau", 1), ("wau", 7), ("mau", 30)):
        assert body[name] == data.distinct_users(events, UNTIL - timedelta(days=days), UNTIL, slug)


@pytest.mark.parametrize("room", ["short", "ample", "a day's users", "one user"])
def test_series_from_one_aggregation_or_composite_pages_alike(store, events, monkeypatch, room):
    """The engine answers a short series (a page's) with one composite page when it holds
    them all; a longer one in one request when its buckets fit under ``GRID_BUCKETS``: the
    values' terms outside with their date histograms inside when every value fits (the users of
    the whole period), the histogram outside with the terms inside when each bucket's do (a
    day's users), else composite pages. Each way gives the oracle's numbers, and each is the
    one taken."""
    from eventtrail.stores import elasticsearch

    daily = data.active_users(events, START, UNTIL, None)
    monkeypatch.setattr(elasticsearch, "KEPT_ANSWERS", 0)  # each series asked, none kept
    if room != "short":  # these two weeks by day as a long series, in thirds (not midnights)
        monkeypatch.setattr(elasticsearch, "SHORT_SERIES", 0)
        monkeypatch.setattr(elasticsearch, "GRID_SLICES", 3)
    if room == "a day's users":  # room (GRID_BUCKETS / buckets + 1) for the busiest day's users
        assert max(daily) < data.distinct_users(events, START, UNTIL, None)
        monkeypatch.setattr(elasticsearch, "GRID_BUCKETS", max(daily) * (len(DAYS) + 2))
    elif room == "one user":
        assert max(daily) > 1
        monkeypatch.setattr(elasticsearch, "GRID_BUCKETS", len(DAYS) + 2)
    asked = []
    run = elasticsearch.ElasticsearchStore._run

    def shape(aggs):
        return {name: (kind, shape(agg.get("aggs", {}))) for name, agg in aggs.items()
                for kind in agg if kind != "aggs"}

    def spy(self, search):
        asked.append(shape(search.to_dict().get("aggs", {})))
        return run(self, search)

    monkeypatch.setattr(elasticsearch.ElasticsearchStore, "_run", spy)
    body = get("active-users", PERIOD)
    assert body["users"] == daily
    assert {s["name"]: s["counts"] for s in get("events-over-time", PERIOD)["series"]} == \
        data.events_by_action(events, START, UNTIL)
    slug = communities(events)[0]
    body = get("new-returning", {**PERIOD, "community": slug})
    assert (body["new"], body["returning"]) == data.new_returning(events, START, UNTIL, slug)
    if store.startswith("elasticsearch"):
        outside = {"k": ("terms", {"t": ("date_histogram", {})})}
        inside = {"t": ("date_histogram", {"k": ("terms", {})})}
        composite = {"pairs": ("composite", {})}
        want = {"short": composite, "ample": outside, "a day's users": inside,
                "one user": composite}[room]
        assert want in asked, asked
        sized = any("values" in a for a in asked)
        assert sized == (room != "short"), asked
        if room in ("ample", "a day's users"):  # a long series: its slices asked at once
            assert asked.count(want) >= elasticsearch.GRID_SLICES, asked
        # The values counted steer the layout a while: asked again, the series is not sized.
        asked.clear()
        assert get("active-users", PERIOD)["users"] == daily
        assert want in asked and not any("values" in a for a in asked), asked


@pytest.mark.parametrize("backend", [pytest.param("elasticsearch", marks=pytest.mark.engine),
                                     pytest.param("elasticsearch-8.7", marks=pytest.mark.engine)],
                         indirect=True)
def test_a_stale_count_of_values_costs_time_never_numbers(store, events, monkeypatch):
    """A long series' layout follows a remembered count of the period's users; when that is
    stale (the site grew), the terms asked do not hold them all, the answer is read another way,
    still the oracle's, and the count is dropped to be asked afresh."""
    from eventtrail.stores import elasticsearch, get_store

    daily = data.active_users(events, START, UNTIL, None)
    monkeypatch.setattr(elasticsearch, "KEPT_ANSWERS", 0)  # each series asked, none kept
    monkeypatch.setattr(elasticsearch, "SHORT_SERIES", 0)
    monkeypatch.setattr(elasticsearch, "GRID_BUCKETS", max(daily) * (len(DAYS) + 2))
    dropped = []

    class Stale(dict):
        def get(self, key, default=None):
            return (1, elasticsearch.time.monotonic())  # "one user", just now

        def pop(self, key, default=None):
            dropped.append(key)
            return super().pop(key, default)

    monkeypatch.setattr(get_store(), "_layouts", Stale())
    assert get("active-users", PERIOD)["users"] == daily
    assert dropped and all(key[0] == "user.id" for key in dropped), dropped


@pytest.mark.parametrize("interval,tz", [("50m", "UTC"), ("7m", "Asia/Kathmandu"),
                                         ("day", "Europe/Paris"), ("week", "America/New_York"),
                                         ("month", "Australia/Lord_Howe")])
def test_a_long_series_is_sliced_on_bucket_starts(interval, tz):
    """The engine's slices of a long series are cut where buckets start, inside the period and
    in order (across daylight-saving changes), so every bucket lies whole in one slice and the
    slices' answers add up; a period too short to cut is one slice."""
    from datetime import UTC, datetime

    from eventtrail.stores.base import bucket_start, next_start
    from eventtrail.stores.elasticsearch import _cuts
    from eventtrail.stores.query import parse_interval

    unit = parse_interval(interval)
    start = datetime(2026, 2, 27, 7, 13, 29, tzinfo=UTC)
    end = datetime(2026, 11, 7, 2, 1, tzinfo=UTC)
    for slices in (1, 2, 3, 5):
        cuts = _cuts(start, end, unit, tz, slices)
        assert len(cuts) == slices - 1, cuts
        assert all(bucket_start(cut, unit, tz) == cut for cut in cuts), cuts
        assert [start, *cuts, end] == sorted({start, *cuts, end}), cuts
    within_one = next_start(bucket_start(start, unit, tz), unit, tz) - timedelta(seconds=1)
    assert _cuts(start, within_one, unit, tz, 5) == []


def test_events_over_time_by_action(store, events):
    slug = communities(events)[1]
    body = get("events-over-time", {**PERIOD, "community": slug})
    assert body["times"] == DAYS
    assert {s["name"]: s["counts"] for s in body["series"]} == \
        data.events_by_action(events, START, UNTIL, slug)
    user = authors(events)[0]
    mine = get("user-events-over-time", {**PERIOD, "user": user})
    assert {s["name"]: s["counts"] for s in mine["series"]} == \
        data.events_by_action(events, START, UNTIL, user=user)


def test_edits_and_state_changes_over_time(store, events):
    start = UNTIL - timedelta(days=200)  # the seed's edits are months old
    params = {"from": start.isoformat(), "to": UNTIL.isoformat()}
    body = get("content-changes", params)
    want = data.content_changes(events, start, UNTIL)
    assert {s["name"]: s["counts"] for s in body["series"]} == want
    assert any(name.startswith("→") for name in want) and "edited" in want


@pytest.mark.parametrize("community", [None, "first"])
def test_new_versus_returning(store, events, community):
    slug = communities(events)[0] if community else None
    body = get("new-returning", {**PERIOD, **({"community": slug} if slug else {})})
    new, returning = data.new_returning(events, START, UNTIL, slug)
    assert (body["new"], body["returning"]) == (new, returning)
    assert sum(new) > 0 and sum(returning) > 0


def test_new_versus_returning_by_week_from_mid_week(store, events):
    # The first week starts before the period: a user whose first event lies in that week but
    # before the period is new in it, and returning in later weeks.
    start = UNTIL - timedelta(days=UNTIL.weekday() + 18)  # a Thursday, three weeks back
    assert start.weekday() == 3
    body = get("new-returning", {"from": start.isoformat(), "to": UNTIL.isoformat(),
                                 "interval": "week"})
    new, returning = data.new_returning(events, start, UNTIL, week=True)
    assert (body["new"], body["returning"]) == (new, returning)
    assert sum(new) > 0 and sum(returning) > 0


def test_weekly_buckets_match_daily_sums_of_events(store, events):
    start = UNTIL - timedelta(days=UNTIL.weekday() + 21)
    body = get("events-over-time", {"from": start.isoformat(), "to": UNTIL.isoformat(),
                                    "interval": "week"})
    daily = data.events_by_action(events, start, UNTIL)
    for series in body["series"]:
        days = daily[series["name"]]
        assert series["counts"] == [sum(days[i:i + 7]) for i in range(0, len(days), 7)]


def test_most_active_members(store, events):
    slug = communities(events)[2]
    body = get("top-members", {"community": slug, "from": START.isoformat(),
                               "to": UNTIL.isoformat(), "size": 8})
    assert [(r["user"], r["events"]) for r in body["results"]] == \
        data.top_members(events, START, UNTIL, slug)[:8]
    assert all(r["name"] for r in body["results"])


def test_failed_views_count_nowhere(store, events):
    """404s of a missing article and of a hidden draft, and 403s, a 500 and a redirect, are
    events (with their outcome) but never reads, views, trends or recommendations."""
    failed = [e for e in events if e["event.action"] == "article.view"
              and e["http.response.status_code"] >= 300]
    assert {e["eventtrail.target.id"] for e in failed} >= {data.MISSING, data.HIDDEN}
    assert {e["event.outcome"] for e in failed if e["http.response.status_code"] >= 400} == \
        {"failure"}
    assert len([e for e in failed if e["eventtrail.target.id"] == data.MISSING]) == 25
    shown: set[str] = set()
    for name, params in (
        ("most-viewed", {"community": data.CRAFT, "size": 100}),
        ("most-viewed", {"size": 100}),
        ("trending", {"community": data.CRAFT, "to": UNTIL.isoformat(), "size": 100}),
        ("trending", {"community": data.READS, "to": UNTIL.isoformat(), "size": 100}),
        ("reading-depth", {"community": data.READS, "size": 100}),
        ("also-read", {"article": data.SEED_ARTICLE, "to": UNTIL.isoformat(), "size": 100}),
    ):
        shown |= {r["article"] for r in get(name, params)["results"]}
    for reader in data.READERS[:3]:
        mine = get("user-most-viewed", {"user": reader, "size": 100})["results"]
        assert data.HIDDEN not in {r["article"] for r in mine}
    assert data.SEED_ARTICLE in shown and not shown & {data.MISSING, data.HIDDEN}
    # The asking reader's failed requests of POPULAR are not reads: it stays recommended, and its
    # readers are the 33 it served.
    body = get("also-read", {"article": data.SEED_ARTICLE, "user": data.READERS[-1],
                             "to": UNTIL.isoformat()})
    assert [(r["article"], r["users"]) for r in body["results"]][-1] == (data.POPULAR, 33)
    # Still events: the failures are in the events over time, by action.
    series = get("events-over-time", {"community": data.CRAFT, "from": (UNTIL - timedelta(
        days=1)).isoformat(), "to": UNTIL.isoformat(), "interval": "day"})["series"]
    served = len([e for e in data.human(events, UNTIL - timedelta(days=1), UNTIL,
                                        "article.view", data.CRAFT)])
    assert {s["name"]: s["total"] for s in series}["article.view"] == served + 25


# --- recommendations -----------------------------------------------------------------------------


def test_readers_also_read_on_the_crafted_case(store, events):
    reader = data.READERS[-1]
    body = get("also-read", {"article": data.SEED_ARTICLE, "user": reader,
                             "to": UNTIL.isoformat()})
    assert [r["article"] for r in body["results"]] == [data.NICHE, data.POPULAR]
    want = data.also_read(events, data.SEED_ARTICLE, reader, UNTIL)
    assert [(r["article"], r["lift"], r["co_users"]) for r in body["results"]] == want
    assert body["results"][0]["co_users"] == 5 and body["results"][1]["users"] == 33


def test_readers_also_read_on_generated_history(store, events):
    top = [a for a, _, _ in data.most_viewed(events, UNTIL - timedelta(days=30), UNTIL)][:3]
    reader = authors(events)[0]
    for article in top:
        body = get("also-read", {"article": article, "user": reader, "to": UNTIL.isoformat(),
                                 "size": 100})
        want = data.also_read(events, article, reader, UNTIL)
        assert [(r["article"], r["lift"], r["co_users"]) for r in body["results"]] == want[:100]
        assert article not in [r["article"] for r in body["results"]]


def test_communities_you_may_like(store, events):
    checked = 0
    for user in authors(events)[:6]:
        body = get("communities-for-you", {"user": user, "to": UNTIL.isoformat(), "size": 100})
        want = data.communities_for_you(events, user, UNTIL)
        assert [(r["community"], r["lift"], r["co_users"]) for r in body["results"]] == want
        checked += len(want)
    assert checked > 0
    stranger = get("communities-for-you", {"user": "no-such-user", "to": UNTIL.isoformat()})
    assert stranger["basis"] == "popular" and stranger["results"]


# --- who may ask, and errors ---------------------------------------------------------------------


def test_users_see_their_own_and_nobody_elses(store, events):
    User = get_user_model()
    author = authors(events)[0]
    username = User.objects.get(pk=int(author)).username
    own = get("user-articles", {}, user=username)
    assert own["user"] == author
    other = authors(events)[1]
    for name in ("user-articles", "user-most-viewed", "communities-for-you"):
        get(name, {"user": other}, user=username, status=403)
    get("active-users", {}, user=username, status=403)  # site-wide: staff only
    get("trending", {"community": communities(events)[0]}, user=username, status=403)
    get("reading-depth", {"community": data.DEPTH}, user=username, status=403)
    get("video-completion", {}, user=username, status=403)


def test_moderators_see_their_community_only(store, history, events):
    username, slug = history["moderator"]
    assert get("trending", {"community": slug}, user=username)["community"] == slug
    assert get("top-members", {"community": slug}, user=username)["community"] == slug
    other = next(c.slug for c in Community.objects.exclude(slug=slug))
    get("top-members", {"community": other}, user=username, status=403)
    assert get("reading-depth", {"community": slug}, user=username)["community"] == slug
    mine = get("video-completion", {"community": slug}, user=username)["results"]
    assert [(r["video"], r["plays"], r["ended"]) for r in mine] == [
        (v, plays, ended) for v, plays, _, ended, _ in data.video_completion(events, community=slug)]
    get("reading-depth", {"community": other}, user=username, status=403)
    get("video-completion", {"community": other}, user=username, status=403)


@pytest.mark.parametrize("name,params,param", [
    ("trending", {}, "community"),
    ("trending", {"community": "x", "days": "0"}, "days"),
    ("active-users", {"interval": "fortnight"}, "interval"),
    ("active-users", {"from": "yesterday"}, "from"),
    ("most-viewed", {"colour": "red"}, "colour"),
    ("also-read", {}, "article"),
    ("reading-depth", {"size": "0"}, "size"),
    ("video-completion", {"interval": "day"}, "interval"),
    ("events-over-time", {"tz": "Mars/Olympus"}, "tz"),
])
def test_errors_name_the_parameter(store, name, params, param):
    body = get(name, params, status=400)
    assert body["errors"][0]["param"] == param


def test_a_series_too_long_to_draw_is_refused_never_cut(store, events):
    """At most MAX_BUCKETS buckets: the longest series answers whole, its last bucket included,
    and one bucket more is a 400 naming the interval and the shortest one that fits."""
    from eventtrail.analytics.params import MAX_BUCKETS

    start = UNTIL - timedelta(minutes=5 * MAX_BUCKETS)
    params = {"from": start.isoformat(), "to": UNTIL.isoformat(), "interval": "5m"}
    body = get("events-over-time", params)
    assert len(body["times"]) == MAX_BUCKETS
    assert body["times"][-1] == (UNTIL - timedelta(minutes=5)).isoformat()
    assert sum(s["total"] for s in body["series"]) == len(list(data.human(events, start, UNTIL)))
    for name in ("events-over-time", "active-users", "new-returning", "content-changes"):
        error = get(name, {**params, "from": (start - timedelta(minutes=1)).isoformat()},
                    status=400)["errors"][0]
        assert error["param"] == "interval"
        assert f"more than {MAX_BUCKETS}" in error["message"] and "6m or more" in error["message"]
    assert get("active-users", {**params, "interval": "6m", "from": (
        start - timedelta(minutes=1)).isoformat()})["interval"] == "6m"


def test_unreachable_elasticsearch_is_503(settings, history):
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "STORE": "elasticsearch",
                           "ELASTICSEARCH_HOSTS": ["http://127.0.0.1:9"],
                           "ELASTICSEARCH_OPTIONS": {"request_timeout": 2, "max_retries": 0}}
    body = get("most-viewed", {}, status=503)
    assert "unreachable" in body["errors"][0]["message"]


def test_bots_are_left_out_unless_asked(store, events):
    with_bots = get("most-viewed", {"include_bots": "true", "size": 100})
    assert [(r["article"], r["views"]) for r in with_bots["results"]] == \
        [(a, n) for a, n, _ in data.most_viewed(events, bots=True)[:100]]
    assert with_bots != get("most-viewed", {"size": 100})
    assert any(e.get("eventtrail.bot") and e["event.action"] == "article.view" for e in events)


def test_database_rollups_are_used_and_follow_late_events(settings, history, events):
    """Aligned periods read the daily rollups; an event ingested later for an old day is in
    the next answer, because its day is rebuilt."""
    from eventtrail.models import TargetRollup, UserRollup
    from eventtrail.stores.database import DatabaseStore

    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "STORE": "database"}
    slug = communities(events)[0]
    before = get("most-viewed", {"community": slug, "size": 1})["results"][0]
    assert TargetRollup.objects.using("events").exists()
    assert UserRollup.objects.using("events").exists()
    article = before["article"]
    old_day = UNTIL - timedelta(days=20)
    late = data._view(old_day + timedelta(hours=3), "late-reader", article, slug)
    DatabaseSink("events").send([data.prepare(late)[1]])
    try:
        after = get("most-viewed", {"community": slug, "size": 1})["results"][0]
        assert (after["views"], after["viewers"]) == (before["views"] + 1, before["viewers"] + 1)
        store = DatabaseStore("events")
        raw = store.queryset(fixtures_where(slug)).filter(target_id=article).count()
        assert raw == after["views"]
    finally:
        StoredEvent.objects.using("events").filter(user_id="late-reader").delete()
        reset_rollups("events")


def fixtures_where(slug):
    from eventtrail.analytics.compute import VIEW, where

    return where(actions=[VIEW], community=slug)


def test_who_read_an_article_is_shown_only_to_its_readers_and_staff(store, events):
    reader = data.READERS[-1]
    get_user_model().objects.get_or_create(pk=int(reader), defaults={"username": "reader-x"})
    username = get_user_model().objects.get(pk=int(reader)).username
    mine = get("also-read", {"article": data.SEED_ARTICLE, "to": UNTIL.isoformat()},
               user=username)
    assert [r["article"] for r in mine["results"]] == [data.NICHE, data.POPULAR]
    get("also-read", {"article": data.NICHE, "to": UNTIL.isoformat()}, user=username,
        status=403)
    assert get("also-read", {"article": data.NICHE, "to": UNTIL.isoformat()})["readers"] > 0
    # Asking for a page is not reading it: the reader's 403s, 500 and redirect of POPULAR do not
    # open who read it.
    get("also-read", {"article": data.POPULAR, "to": UNTIL.isoformat()}, user=username,
        status=403)
