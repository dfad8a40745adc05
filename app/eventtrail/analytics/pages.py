"""Server-rendered analytics pages and the JSON they poll (ETag / If-None-Match, 304s).

Each page is a list of panels; every panel has a table (readable without JavaScript) and most a
chart spec the script draws with Chart.js. The same payload renders the page and feeds the poll.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from eventtrail.analytics import access, compute
from eventtrail.analytics.params import Params, parse, period
from eventtrail.conf import get_config, resolved
from eventtrail.stores import StoreUnavailable, get_store
from eventtrail.stores.base import answering
from eventtrail.stores.query import QueryError

PERIODS = {"7d": "day", "30d": "day", "90d": "week", "365d": "month", "all": "month"}
DEFAULT_PERIOD = "30d"


def _params(request: HttpRequest) -> tuple[str, Params]:
    label = request.GET.get("period") or DEFAULT_PERIOD
    if label not in PERIODS:
        raise QueryError("period", f"use one of {', '.join(PERIODS)}")
    values = {"interval": PERIODS[label]}
    start = period(label)
    if start:
        values["from"] = start
    p = parse(values, {"interval", "size"}, default_interval=PERIODS[label])
    return label, p


HIDDEN = "Article not shown"  # what a viewer sees of an article the site hides from them


def _article_rows(viewer: Any, rows: list[dict[str, Any]], columns: list[str], *,
                  visible_only: bool = False) -> list[list[Any]]:
    """Table rows led by each article's label, resolved for ``viewer`` by the TARGET_LABELS hook
    (``hook(viewer, kind, ids)`` answers the ids the viewer may see, with the site's own
    visibility rules). An article it leaves out shows neither title nor id, or, with
    ``visible_only`` (suggestions of what to open), is not listed. Without the hook: ids."""
    hook = resolved("TARGET_LABELS")
    ids = [str(r["article"]) for r in rows]
    labels: dict[str, tuple[str, str | None]] = hook(viewer, "article", ids) if hook and ids else {}
    out = []
    for article, r in zip(ids, rows, strict=True):
        if hook is None:
            label, url = f"Article {article}", None
        elif article in labels:
            label, url = labels[article]
        elif visible_only:
            continue
        else:
            label, url = HIDDEN, None
        out.append([{"text": label, "href": url}, *[r[c] for c in columns]])
    return out


def _table_panel(pid: str, title: str, headers: list[str], rows: list[list[Any]], *,
                 note: str = "", chart: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": pid, "title": title, "note": note, "chart": chart,
            "table": {"headers": headers, "rows": rows}}


def _bar(labels: list[Any], datasets: list[tuple[str, list[Any]]], *,
         horizontal: bool = False, stacked: bool = False, kind: str = "bar",
         right: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A chart spec; the series named in ``right`` are drawn against an axis of their own on
    the right, for figures of another scale (events beside the users who made them)."""
    text = [lab["text"] if isinstance(lab, dict) else str(lab) for lab in labels]
    return {"type": kind, "labels": text, "horizontal": horizontal, "stacked": stacked,
            "datasets": [{"label": name, "data": data,
                          "axis": "right" if name in right else "left"}
                         for name, data in datasets]}


def _series_panel(pid: str, title: str, data: dict[str, Any], series: list[tuple[str, list[Any]]],
                  *, stacked: bool = False, kind: str = "line", note: str = "",
                  right: frozenset[str] = frozenset()) -> dict[str, Any]:
    times = [t[:10] if data["interval"] in {"day", "week", "month"} else t[:16]
             for t in data["times"]]
    rows = [[t, *[s[1][i] for s in series]] for i, t in enumerate(times)]
    return _table_panel(pid, title, ["Period starting", *[s[0] for s in series]], rows,
                        note=note, chart=_bar(times, series, stacked=stacked, kind=kind,
                                              right=right))


def _timeline(pid: str, title: str, data: dict[str, Any], *, top: int = 6,
              note: str = "") -> dict[str, Any]:
    series = [(s["name"], s["counts"]) for s in data["series"][:top]]
    rest = data["series"][top:]
    if rest:
        series.append(("other", [sum(s["counts"][i] for s in rest)
                                 for i in range(len(data["times"]))]))
    return _series_panel(pid, title, data, series, stacked=True, kind="bar", note=note)


def _most_viewed_panel(viewer: Any, pid: str, title: str, data: dict[str, Any],
                       note: str = "") -> dict[str, Any]:
    rows = _article_rows(viewer, data["results"], ["views", "viewers"])
    chart = _bar([r[0] for r in rows], [("views", [r[1] for r in rows]),
                                         ("distinct viewers", [r[2] for r in rows])],
                 horizontal=True)
    return _table_panel(pid, title, ["Article", "Views", "Viewers"], rows, chart=chart, note=note)


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f}%"


class _Asked:
    """A page's view of the store: a question asked twice while one page is built is answered
    once (the site page's most viewed and reading depth both tally the period's views; its
    active users and new-vs-returning both ask who was active when), also when two panels ask
    it at once from their threads. Answers are the store's own, shared read-only."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._answers: dict[tuple[str, str], Future[Any]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def ask(*args: Any, **kwargs: Any) -> Any:
            key = (name, repr((args, sorted(kwargs.items()))))
            with self._lock:
                answer = self._answers.get(key)
                mine = answer is None
                if answer is None:
                    answer = self._answers[key] = Future()
            if mine:
                try:
                    answer.set_result(attribute(*args, **kwargs))
                except BaseException as exc:
                    answer.set_exception(exc)
                    raise
            return answer.result()

        return ask


def _engagement_questions(store: Any, p: Params,
                          community: str | None) -> dict[str, Callable[[], Any]]:
    return {"depth": lambda: compute.reading_depth(store, p, community),
            "video": lambda: compute.video_completion(store, p, community)}


def _engagement_panels(viewer: Any, answers: dict[str, Any]) -> list[dict[str, Any]]:
    """Reading depth per article and video completion; charts only when there is data, so an
    empty panel never draws a blank canvas."""
    depth = answers["depth"]
    depths = [f"{d}%" for d in depth["depths"]]
    rows = _article_rows(viewer, depth["results"], ["views"])
    for row, r in zip(rows, depth["results"], strict=True):
        row.extend(f"{n} ({_percent(s)})" for n, s in zip(r["reached"], r["share"], strict=True))
    results = depth["results"]
    depth_chart = None
    if any(any(r["reached"]) for r in results):
        depth_chart = _bar([r[0] for r in rows], [
            (f"reached {label}", [round((r["share"][i] or 0) * 100) for r in results])
            for i, label in enumerate(depths)], horizontal=True)
    video = answers["video"]
    quartiles = [f"{q}%" for q in video["quartiles"]]
    video_rows = [[r["video"], r["plays"], *r["progress"], r["ended"], _percent(r["completion"])]
                  for r in video["results"]]
    video_chart = _bar([r["video"] for r in video["results"]], [
        ("plays", [r["plays"] for r in video["results"]]),
        *[(f"reached {q}", [r["progress"][i] for r in video["results"]])
          for i, q in enumerate(quartiles)],
        ("ended", [r["ended"] for r in video["results"]])],
        horizontal=True) if video["results"] else None
    return [
        _table_panel("reading-depth", "Reading depth", ["Article", "Views", *[
            f"Reached {d}" for d in depths]], rows, chart=depth_chart,
            note="Most viewed articles; per depth, the scroll events that reached it and their "
                 "share of the article's views (capped at 100%)."),
        _table_panel("video-completion", "Video completion", [
            "Video", "Plays", *[f"Reached {q}" for q in quartiles], "Ended", "Completion"],
            video_rows, chart=video_chart,
            note="Most played videos; completion is ended / plays (capped at 100%)."),
    ]


def _activity_questions(store: Any, p: Params,
                        community: str | None) -> dict[str, Callable[[], Any]]:
    return {"active": lambda: compute.active_users(store, p, community, shared=True),
            "returning": lambda: compute.new_returning(store, p, community),
            "members": lambda: compute.top_members(store, p, community),
            "actions": lambda: compute.events_over_time(store, p, community=community),
            "changes": lambda: compute.content_changes(store, p, community)}


def _activity_panels(answers: dict[str, Any]) -> list[dict[str, Any]]:
    active, returning, members = answers["active"], answers["returning"], answers["members"]
    member_rows = [[m["name"] or f"user {m['user']}", m["events"]] for m in members["results"]]
    return [
        _table_panel("dau", "Active users now", ["Last day", "Last 7 days", "Last 30 days"],
                     [[active["dau"], active["wau"], active["mau"]]],
                     note="Distinct signed-in users with an event in the last 1, 7 and 30 days."),
        _series_panel("active", "Active users", active, [("active users", active["users"]),
                                                         ("events", active["events"])],
                      right=frozenset({"events"}),
                      note="Events are many times the users who made them: each line has its "
                           "own scale, events on the right-hand axis."),
        _series_panel("new-returning", "New and returning users", returning,
                      [("new", returning["new"]), ("returning", returning["returning"])],
                      stacked=True, kind="bar",
                      note="New: the user's first event (in retention) falls in that period."),
        _table_panel("members", "Most active members", ["Member", "Events"], member_rows,
                     chart=_bar(member_rows and [r[0] for r in member_rows],
                                [("events", [r[1] for r in member_rows])], horizontal=True)),
        _timeline("actions", "Events by action", answers["actions"]),
        _timeline("changes", "Edits and state changes", answers["changes"]),
    ]


def _payload(kind: str, subject: str | None, label: str, p: Params,
             panels: Callable[[], list[dict[str, Any]]], freshness: dict[str, Any]) -> dict[str, Any]:
    return {"page": kind, "subject": subject, "period": label, "generated": p.now.isoformat(),
            "newest": freshness["newest"], "events": freshness["events"], "panels": panels()}


def _etag(viewer: Any, kind: str, subject: str | None, label: str,
          freshness: dict[str, Any]) -> str:
    # Relative periods move with the clock: the minute is part of the tag, so figures refresh at
    # least once a minute even when no event arrives. Labels are resolved for the viewer, so
    # one viewer's tag never validates another's payload.
    minute = datetime.now(UTC).strftime("%Y%m%d%H%M")
    blob = json.dumps([getattr(viewer, "pk", None), kind, subject, label, freshness, minute],
                      sort_keys=True, default=str)
    return '"' + hashlib.sha256(blob.encode()).hexdigest()[:20] + '"'


def _serve(request: HttpRequest, kind: str, subject: str | None, title: str,
           build: Callable[[Params], list[dict[str, Any]]],
           fresh: Callable[[Params], dict[str, Any]], data_url: str) -> HttpResponseBase:
    """The page (``as_json`` False) or its JSON, 304 when the client's ETag still holds."""
    as_json = request.path.endswith("data.json")
    try:
        with answering():  # one request's answer: see AS_OF
            label, p = _params(request)
            freshness = fresh(p)
            etag = _etag(request.user, kind, subject, label, freshness)
            if as_json and request.headers.get("If-None-Match") == etag:
                response: HttpResponseBase = HttpResponse(status=304)
            else:
                payload = _payload(kind, subject, label, p, lambda: build(p), freshness)
                if as_json:
                    response = JsonResponse(payload)
                else:
                    config = get_config()
                    response = render(request, "eventtrail/analytics/page.html", {
                        "base_template": config["ANALYTICS_BASE_TEMPLATE"], "title": title,
                        "payload": payload, "periods": list(PERIODS), "data_url": data_url,
                        "poll_ms": int(config["ANALYTICS_POLL_SECONDS"] * 1000), "etag": etag,
                        "links": links_for(request.user),
                    })
    except QueryError as exc:
        if not as_json:
            return HttpResponse(f"{exc.param}: {exc.message}", status=400,
                                content_type="text/plain; charset=utf-8")
        return JsonResponse({"errors": [{"param": exc.param, "message": exc.message}]},
                            status=400)
    except StoreUnavailable as exc:
        if as_json:
            return JsonResponse({"errors": [{"param": None, "message": str(exc)}]}, status=503)
        return render(request, "eventtrail/analytics/unavailable.html",
                      {"base_template": get_config()["ANALYTICS_BASE_TEMPLATE"],
                       "message": str(exc)}, status=503)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


def links_for(user: Any) -> list[tuple[str, str]]:
    """The analytics pages this user may open, for navigation."""
    if not getattr(user, "is_authenticated", False):
        return []
    links = [("My activity", reverse("eventtrail:analytics-me"))]
    for slug in access.moderated(user):
        links.append((f"{slug} stats", reverse("eventtrail:analytics-community", args=[slug])))
    if access.sees_everything(user):
        links.append(("Site stats", reverse("eventtrail:analytics-site")))
    return links


# --- my activity ---------------------------------------------------------------------------------


def _user_panels(viewer: Any, store: Any, p: Params, user: str) -> list[dict[str, Any]]:
    store = _Asked(store)
    # Recommendations read the last 30 days whatever the period: co-use needs the history.
    recent = replace(p, days=30)

    def also_read() -> tuple[str, dict[str, Any]] | None:
        """What readers of the user's most read article also read (asked beside the others:
        most viewed is one question, whichever panel asks it first)."""
        viewed = compute.most_viewed(store, p, user=user)
        if not viewed["results"]:
            return None
        top = str(viewed["results"][0]["article"])
        return top, compute.also_read(store, recent, top, user)

    # The recommendations first: each is four or five searches in turn, the longest wait.
    answers = compute.gather(store, {
        "likes": lambda: compute.communities_for_you(store, recent, user),
        "also": also_read,
        "viewed": lambda: compute.most_viewed(store, p, user=user),
        "mine": lambda: compute.user_articles(store, p, user),
        "actions": lambda: compute.events_over_time(store, p, user=user)})
    viewed, mine = answers["viewed"], answers["mine"]
    by_state = mine["by_state"]
    mine_rows = _article_rows(viewer, mine["results"], ["state", "views", "viewers"])
    panels = [
        _timeline("my-actions", "What I did", answers["actions"]),
        _most_viewed_panel(viewer, "my-viewed", "Articles I read most", viewed),
        _table_panel("my-articles", "My articles by state", ["Article", "State", "Views",
                                                            "Viewers"], mine_rows,
                     note="States replayed from the event log; views in the period.",
                     chart=_bar(list(by_state), [("articles", list(by_state.values()))],
                                kind="doughnut")),
    ]
    likes = answers["likes"]
    like_rows = [[r["community"], r.get("lift", "popular"), r.get("co_users", r.get("users"))]
                 for r in likes["results"]]
    panels.append(_table_panel("for-you", "Communities you may like",
                               ["Community", "Lift", "Shared users"], like_rows,
                               note="Used by people active where you are, ranked by lift."))
    if answers["also"] is not None:
        top, suggested = answers["also"]
        rows = _article_rows(viewer, suggested["results"], ["lift", "co_users"],
                             visible_only=True)
        name = _article_rows(viewer, [{"article": top}], [])[0][0]["text"]
        panels.append(_table_panel("also-read", f"Readers of “{name}” also read",
                                   ["Article", "Lift", "Shared readers"], rows,
                                   note="Articles you have read are left out."))
    return panels


@login_required
@require_GET
def my_activity(request: HttpRequest) -> HttpResponseBase:
    """The user's own page; ``?user=<id>`` opens another user's, for staff only (else 403)."""
    user = request.GET.get("user") or access.own_id(request.user)
    access.check_user(request.user, user)
    return _user_page(request, user)


def _user_page(request: HttpRequest, user: str) -> HttpResponseBase:
    store = get_store()
    data_url = reverse("eventtrail:analytics-me-data")
    if user != access.own_id(request.user):
        data_url += "?" + urlencode({"user": user})
    return _serve(request, "user", user, "My activity" if user == access.own_id(request.user)
                  else f"Activity of user {user}",
                  lambda p: _user_panels(request.user, store, p, user),
                  lambda p: compute.freshness(store, p, user=user), data_url)


my_activity_data = my_activity


# --- community and site --------------------------------------------------------------------------


def _community_panels(viewer: Any, store: Any, p: Params, slug: str) -> list[dict[str, Any]]:
    store = _Asked(store)
    answers = compute.gather(store, {
        "trend": lambda: compute.trending(store, p, slug),
        "viewed": lambda: compute.most_viewed(store, p, community=slug),
        **_engagement_questions(store, p, slug), **_activity_questions(store, p, slug)})
    trend = answers["trend"]
    rows = _article_rows(viewer, trend["results"], ["score", "heat", "momentum", "views"])
    trending = _table_panel(
        "trending", f"Trending (last {trend['days']} days)",
        ["Article", "Score", "Heat", "Momentum", "Views"], rows,
        note=f"Decayed views (half-life {trend['half_life']:g} days), distinct viewers count "
             "fully and repeat views a quarter, times the rise over the window before.",
        chart=_bar([r[0] for r in rows], [("score", [r[1] for r in rows])], horizontal=True))
    viewed = _most_viewed_panel(viewer, "most-viewed", "Most viewed in the period",
                                answers["viewed"])
    return [trending, viewed, *_engagement_panels(viewer, answers), *_activity_panels(answers)]


def _check_community(request: HttpRequest, slug: str) -> None:
    access.check_community(request.user, slug)


@login_required
@require_GET
def community(request: HttpRequest, slug: str) -> HttpResponseBase:
    _check_community(request, slug)
    store = get_store()
    return _serve(request, "community", slug, f"Community {slug}",
                  lambda p: _community_panels(request.user, store, p, slug),
                  lambda p: compute.freshness(store, p, community=slug),
                  reverse("eventtrail:analytics-community-data", args=[slug]))


community_data = community


def _site_panels(viewer: Any, store: Any, p: Params) -> list[dict[str, Any]]:
    store = _Asked(store)
    answers = compute.gather(store, {"viewed": lambda: compute.most_viewed(store, p),
                              **_activity_questions(store, p, None),
                              **_engagement_questions(store, p, None)})
    viewed = _most_viewed_panel(viewer, "most-viewed", "Most viewed articles", answers["viewed"])
    return [*_activity_panels(answers), viewed, *_engagement_panels(viewer, answers)]


@login_required
@require_GET
def site(request: HttpRequest) -> HttpResponseBase:
    if not access.sees_everything(request.user):
        raise PermissionDenied("site-wide analytics are for staff")
    store = get_store()
    return _serve(request, "site", None, "Site activity",
                  lambda p: _site_panels(request.user, store, p),
                  lambda p: compute.freshness(store, p),
                  reverse("eventtrail:analytics-site-data"))


site_data = site
