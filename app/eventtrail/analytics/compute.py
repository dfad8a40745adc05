"""Every analytic as a function of a store: exact store primitives, then documented arithmetic.

Stores answer small exact questions (``Store.tally``, ``daily_tally``, ``active_pairs``...); the
scores, lifts and splits are computed here once, so every store gives the same numbers.
"""
from __future__ import annotations

import contextvars
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from eventtrail.analytics.params import Params, buckets, day_floor
from eventtrail.stores.base import Store, bucket_start, epoch_ms, render_time, users_per_bucket
from eventtrail.stores.query import Filter, Where

VIEW = "article.view"
CREATE = "article.create"
STATE_CHANGE = "article.state_change"
EDIT = "article.edit"
SCROLL = "browser.scroll"
PLAY, PROGRESS, ENDED = "video.play", "video.progress", "video.ended"
TARGET = "eventtrail.target.id"
COMMUNITY = "eventtrail.community.slug"
USER = "user.id"
STATUS = "http.response.status_code"
DEPTH = "eventtrail.browser.scroll_depth"
VIDEO = "eventtrail.video.id"
QUARTILE = "eventtrail.video.progress"
QUARTILES = (25, 50, 75, 100)  # the browser script reports each once per page view or video

REPEAT_WEIGHT = 0.25  # a repeat view by the same user that day counts a quarter of a new viewer
MOMENTUM_BOUNDS = (0.25, 4.0)
CANDIDATES = 1000  # articles (or communities) a trending or recommendation query considers
MAX_READERS = 1000  # readers of one article whose other reads are looked at
MIN_SUPPORT = 2  # co-viewers a recommendation needs: one shared reader is noise
STATES = ("draft", "submitted", "published", "rejected", "archived")
# A view is a read only when the page was served (2xx): a 404 for an article that does not exist
# or is hidden, a 403, a redirect to the login page or a 500 stays an event (event.outcome, the
# status) for the site-health views, and never counts as a read, view, trend or recommendation.
SUCCEEDED = (Filter(STATUS, "gte", 200), Filter(STATUS, "lt", 300))


def where(
    p: Params | None = None, *, actions: Sequence[str] = (), community: str | None = None,
    user: str | None = None, users: Sequence[str] | None = None,
    communities: Sequence[str] | None = None, target: str | None = None,
    start: datetime | None = None, end: datetime | None = None, timeless: bool = False,
    has: str | None = None, equals: dict[str, Any] | None = None,
) -> Where:
    """A store filter; ``p`` gives the period and the bot rule unless ``timeless``. Views
    (``article.view``) are only those that succeeded (``SUCCEEDED``)."""
    filters: list[Filter] = []
    if len(actions) == 1:
        filters.append(Filter("event.action", "exact", actions[0]))
    elif actions:
        filters.append(Filter("event.action", "in", tuple(actions)))
    if actions and all(a.startswith("article.") for a in actions):
        filters.append(Filter("eventtrail.target.type", "exact", "article"))
    if tuple(actions) == (VIEW,):
        filters.extend(SUCCEEDED)
    if community is not None:
        filters.append(Filter(COMMUNITY, "exact", community))
    if communities is not None:
        filters.append(Filter(COMMUNITY, "in", tuple(communities)))
    if user is not None:
        filters.append(Filter(USER, "exact", user))
    if users is not None:
        filters.append(Filter(USER, "in", tuple(users)))
    if target is not None:
        filters.append(Filter(TARGET, "exact", target))
    if has is not None:
        filters.append(Filter(has, "exists", True))
    for name, value in (equals or {}).items():
        filters.append(Filter(name, "exact", value))
    if p is not None and not timeless:
        start = start or p.start
        end = end or p.end
    include_bots = p.include_bots if p is not None else False
    return Where(tuple(filters), start, end, None, include_bots, None)


THREADS = 4  # store questions asked of the search engine at once
_asking = threading.local()  # set in gather's threads


def gather(store: Store, questions: dict[str, Callable[[], Any]], *,
           chain: bool = False) -> dict[str, Any]:
    """Each question's answer. The search engine is asked them at once, as Kibana asks for a
    dashboard's panels (a page's fifteen panels; an endpoint's few aggregations, which take the
    engine's cores in turn otherwise); the database stores one after another, in the request's
    own connection. Questions asked from one of these threads (a page's panel asking its
    own) are asked there one after another: the page already keeps the engine busy. Unless
    ``chain``: the independent steps of a panel whose searches otherwise wait on each other
    (a recommendation's), which is what its page waits for once the quicker panels are done."""
    if getattr(store, "name", "") != "elasticsearch" or len(questions) < 2 \
            or (getattr(_asking, "now", False) and not chain):
        return {name: ask() for name, ask in questions.items()}

    def asked(ask: Callable[[], Any]) -> Any:
        _asking.now = True
        return ask()

    with ThreadPoolExecutor(max_workers=min(THREADS, len(questions))) as pool:
        # Each in a copy of the asking thread's context: its answer's moment (``answering``).
        futures = {name: pool.submit(contextvars.copy_context().run, asked, ask)
                   for name, ask in questions.items()}
        return {name: future.result() for name, future in futures.items()}


def now_of(p: Params) -> datetime:
    """The reference time of windows that end "now": ``to`` when given, so results replay."""
    return p.end or p.now


def _round(value: float) -> float:
    return round(value, 4)


# --- articles ------------------------------------------------------------------------------------


def trending(store: Store, p: Params, community: str | None) -> dict[str, Any]:
    """Articles whose readership is high now and rising against the window before.

    The window is the last ``days`` UTC days, today included; the previous window is the
    ``days`` before it. For an article, each day d of a window contributes

        2 ** (-age_d / half_life) * (viewers_d + REPEAT_WEIGHT * (views_d - viewers_d))

    where age_d is whole days from the window's last day, views_d its views that day and
    viewers_d the distinct signed-in users among them (anonymous views count as repeats).
    ``heat`` sums the current window, ``previous_heat`` the previous one (aged from its own
    last day), ``momentum = (heat + 1) / (previous_heat + 1)`` bounded to [0.25, 4], and
    ``score = heat * momentum``: a steady article keeps about its heat, a rising one gains up
    to four times it. Only the ``CANDIDATES`` most viewed articles of both windows are scored.
    """
    start, now = recent_days(p)
    today = start + timedelta(days=p.days - 1)
    previous_start = start - timedelta(days=p.days)
    scope = where(p, actions=[VIEW], community=community, start=previous_start, end=now)
    candidates = [t.key for t in store.tally(scope, TARGET, size=CANDIDATES)]
    daily = store.daily_tally(scope, TARGET, candidates)
    rows: list[dict[str, Any]] = []
    for article, days in daily.items():
        heat = previous = 0.0
        views = 0
        for day_ms in sorted(days):
            events, viewers = days[day_ms]
            day = datetime.fromtimestamp(day_ms / 1000, UTC)
            weight = viewers + REPEAT_WEIGHT * (events - viewers)
            if day >= start:
                heat += 2 ** (-((today - day).days) / p.half_life) * weight
                views += events
            else:
                previous += 2 ** (-((start - timedelta(days=1) - day).days) / p.half_life) * weight
        if heat <= 0:
            continue
        low, high = MOMENTUM_BOUNDS
        momentum = min(max((heat + 1) / (previous + 1), low), high)
        rows.append({"article": article, "score": _round(heat * momentum), "heat": _round(heat),
                     "previous_heat": _round(previous), "momentum": _round(momentum),
                     "views": views})
    rows.sort(key=lambda r: (-r["score"], r["article"]))
    return {"community": community, "days": p.days, "half_life": p.half_life,
            "from": start.isoformat(), "to": now.isoformat(), "results": rows[: p.size]}


def most_viewed(store: Store, p: Params, *, community: str | None = None,
                user: str | None = None) -> dict[str, Any]:
    """Articles by views in the period (all of retention when it has no start)."""
    tallies = store.tally(where(p, actions=[VIEW], community=community, user=user), TARGET,
                          size=p.size)
    return {"community": community, "user": user, **_period(p),
            "results": [{"article": t.key, "views": t.events, "viewers": t.users}
                        for t in tallies]}


def user_articles(store: Store, p: Params, user: str) -> dict[str, Any]:
    """The user's own articles (their ``article.create`` events) with the state the event log
    gives them (the create event's state, updated by each later ``article.state_change``, by
    whoever made it) and their views in the period."""
    created = store.tally(where(p, actions=[CREATE], user=user, timeless=True), TARGET,
                          size=CANDIDATES * 10)
    ids = [t.key for t in created]
    states = store.latest_states(where(p, actions=[CREATE, STATE_CHANGE], timeless=True), ids)
    views = {t.key: t for t in store.tally(where(p, actions=[VIEW]), TARGET, keys=ids)}
    articles: list[dict[str, Any]] = []
    for article in ids:
        seen = views.get(article)
        articles.append({"article": article, "state": states.get(article, "unknown"),
                         "views": seen.events if seen else 0, "viewers": seen.users if seen else 0})
    order = {state: i for i, state in enumerate(STATES)}
    articles.sort(key=lambda a: (order.get(a["state"], len(order)), -a["views"], a["article"]))
    by_state: dict[str, int] = {}
    for a in articles:
        by_state[a["state"]] = by_state.get(a["state"], 0) + 1
    return {"user": user, **_period(p), "by_state": by_state, "results": articles}


def _share(part: int, whole: int) -> float | None:
    return _round(min(part / whole, 1.0)) if whole else None


def reading_depth(store: Store, p: Params, community: str | None) -> dict[str, Any]:
    """How far readers scroll, per article: its views and, per depth, the ``browser.scroll``
    events that reached it.

    The ``size`` most viewed articles of the period are shown. ``share`` is scroll events at a
    depth divided by the article's views, capped at 1: the script reports each depth once per
    page view, so it is the share of views that reached the depth; the cap absorbs the few
    scroll events without a counted view (a page restored from the back-forward cache, a view
    just before the period began).
    """
    views = store.tally(where(p, actions=[VIEW], community=community), TARGET, size=p.size)
    ids = [t.key for t in views]
    scrolls = where(p, actions=[SCROLL], community=community,
                    equals={"eventtrail.target.type": "article"})
    reached = store.split_tally(scrolls, TARGET, ids, DEPTH, QUARTILES)
    rows = []
    for t in views:
        counts = [reached.get(t.key, {}).get(str(d), 0) for d in QUARTILES]
        rows.append({"article": t.key, "views": t.events, "viewers": t.users, "reached": counts,
                     "share": [_share(n, t.events) for n in counts]})
    return {"community": community, **_period(p), "depths": list(QUARTILES), "results": rows}


def video_completion(store: Store, p: Params, community: str | None) -> dict[str, Any]:
    """How far videos are watched, per ``eventtrail.video.id``: plays (``video.play``), the
    ``video.progress`` events per quartile, ``video.ended`` and ``completion = ended / plays``
    (capped at 1, for an end whose play fell before the period). The ``size`` most played."""
    plays = store.tally(where(p, actions=[PLAY], community=community), VIDEO, size=p.size)
    ids = [t.key for t in plays]
    reached = store.split_tally(where(p, actions=[PROGRESS], community=community), VIDEO, ids,
                                QUARTILE, QUARTILES)
    ended = {t.key: t.events for t in store.tally(where(p, actions=[ENDED], community=community),
                                                  VIDEO, keys=ids)}
    rows = []
    for t in plays:
        done = ended.get(t.key, 0)
        rows.append({"video": t.key, "plays": t.events, "viewers": t.users,
                     "progress": [reached.get(t.key, {}).get(str(q), 0) for q in QUARTILES],
                     "ended": done, "completion": _share(done, t.events)})
    return {"community": community, **_period(p), "quartiles": list(QUARTILES), "results": rows}


# --- people and activity over time -----------------------------------------------------------


def _axis(p: Params, found: Sequence[int]) -> list[int]:
    """Bucket starts (epoch ms) from the period's start (or first bucket) to its end (or now)."""
    firsts = [datetime.fromtimestamp(k / 1000, UTC) for k in found]
    if p.start:
        firsts.append(p.start)
    if not firsts:
        return []
    return [epoch_ms(b) for b in buckets(min(firsts), p.end or p.now, p.interval, p.tz)]


def _series(store: Store, p: Params, w: Where,
            group: str) -> tuple[list[int], dict[str, dict[int, int]]]:
    found: dict[str, dict[int, int]] = defaultdict(dict)
    for (key, bucket), count in store.counts(w, group, p.interval, p.tz).items():
        found[str(key)][bucket] = count
    keys = sorted({k for counts in found.values() for k in counts})
    return _axis(p, keys), found


def _times(p: Params, axis: list[int]) -> list[str]:
    return [render_time(ms, p.tz) for ms in axis]


def events_over_time(store: Store, p: Params, *, community: str | None = None,
                     user: str | None = None) -> dict[str, Any]:
    """Events per bucket and action, the busiest actions first."""
    axis, found = _series(store, p, where(p, community=community, user=user), "event.action")
    totals = {action: sum(c.values()) for action, c in found.items()}
    actions = sorted(found, key=lambda a: (-totals[a], a))
    return {"interval": p.interval.label, "tz": p.tz, **_period(p), "times": _times(p, axis),
            "series": [{"name": a, "total": totals[a], "counts": [found[a].get(t, 0) for t in axis]}
                       for a in actions]}


def content_changes(store: Store, p: Params, community: str | None) -> dict[str, Any]:
    """Creations and edits per bucket, and state changes per bucket by the state entered."""
    base = where(p, actions=[CREATE, EDIT], community=community)
    axis_a, actions = _series(store, p, base, "event.action")
    changes = where(p, actions=[STATE_CHANGE], community=community)
    axis_b, states = _series(store, p, changes, "eventtrail.target.state")
    axis = sorted(set(axis_a) | set(axis_b))
    series = [{"name": {CREATE: "created", EDIT: "edited"}[a], "total": sum(c.values()),
               "counts": [c.get(t, 0) for t in axis]} for a, c in sorted(actions.items())]
    series += [{"name": f"→ {s}", "total": sum(c.values()), "counts": [c.get(t, 0) for t in axis]}
               for s, c in sorted(states.items())]
    return {"interval": p.interval.label, "tz": p.tz, **_period(p), "times": _times(p, axis),
            "series": series}


def _users_in(store: Store, w: Where) -> Callable[[], int]:
    return lambda: store.count_users(w)


def active_users(store: Store, p: Params, community: str | None, *,
                 shared: bool = False) -> dict[str, Any]:
    """Distinct signed-in users per bucket, and over the last 1, 7 and 30 days (DAU/WAU/MAU).

    Alone (an endpoint), the store counts users and events per bucket. ``shared`` (a page) asks
    instead what the page's other panels ask, each answered once: the events per action and
    bucket ("events by action"), the user pairs ("new and returning users")."""
    w = where(p, community=community)
    now = now_of(p)
    rolling = {"dau": 1, "wau": 7, "mau": 30}
    if shared:
        questions: dict[str, Callable[[], Any]] = {
            "events": lambda: store.counts(w, "event.action", p.interval, p.tz),
            "pairs": lambda: store.active_pairs(w, p.interval, p.tz)}
    else:
        questions = {"events": lambda: store.counts(w, None, p.interval, p.tz),
                     "users": lambda: store.user_counts(w, p.interval, p.tz)}
    answers = gather(store, {**questions, **{
        name: _users_in(store, where(p, community=community, start=now - timedelta(days=days),
                                     end=now))
        for name, days in rolling.items()}})
    events: dict[int, int] = defaultdict(int)
    for (_, bucket), n in answers["events"].items():
        events[bucket] += n
    users = users_per_bucket(answers["pairs"]) if shared else answers["users"]
    axis = _axis(p, list(events))
    return {"interval": p.interval.label, "tz": p.tz, **_period(p),
            **{name: answers[name] for name in rolling}, "times": _times(p, axis),
            "users": [users.get(t, 0) for t in axis], "events": [events.get(t, 0) for t in axis]}


def new_returning(store: Store, p: Params, community: str | None) -> dict[str, Any]:
    """Per bucket, active users split in two: ``new`` when the user's first event ever (within
    retention, in this community when one is given) falls in that bucket, else ``returning``."""
    pairs = store.active_pairs(where(p, community=community), p.interval, p.tz)
    # A user's first event ever lies either before the period (found among the events before
    # it: the rest of retention, often none) or in it, where their earliest active bucket holds
    # it. So only the events before the period are searched, never the period again.
    first_bucket: dict[str, int] = {}
    for user, bucket in pairs:
        first_bucket[user] = min(bucket, first_bucket.get(user, bucket))
    if p.start is not None:
        before = where(p, community=community, timeless=True, end=p.start)
        for user, moment in store.first_seen(before, sorted(first_bucket)).items():
            first_bucket[user] = epoch_ms(bucket_start(moment, p.interval, p.tz))
    new: dict[int, int] = defaultdict(int)
    returning: dict[int, int] = defaultdict(int)
    for user, bucket in pairs:
        if first_bucket.get(user) == bucket:
            new[bucket] += 1
        else:
            returning[bucket] += 1
    axis = _axis(p, sorted({b for _, b in pairs}))
    return {"interval": p.interval.label, "tz": p.tz, **_period(p), "times": _times(p, axis),
            "new": [new.get(t, 0) for t in axis], "returning": [returning.get(t, 0) for t in axis]}


def top_members(store: Store, p: Params, community: str | None) -> dict[str, Any]:
    """Users with the most events in the period (and the community)."""
    rows = store.top_users(where(p, community=community), p.size)
    return {"community": community, **_period(p),
            "results": [{"user": u, "name": n, "events": e} for u, n, e in rows]}


# --- recommendations -----------------------------------------------------------------------------


def _lift(store: Store, window: Where, item: str, peers: list[str], exclude: set[str],
          size: int, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Items the peers used, ranked by lift = P(item | peer) / P(item)
    = co * N / (peers * users(item)), where co is how many peers used the item, users(item) how
    many users used it in the window and N how many users used anything in it."""
    if not peers:
        return []
    answers = gather(store, {
        "co": lambda: store.tally(where(**filters, users=peers, start=window.start,
                                        end=window.end), item, size=CANDIDATES),
        "total": lambda: store.count_users(window)}, chain=True)
    candidates = [t for t in answers["co"] if t.key not in exclude and t.users >= MIN_SUPPORT]
    if not candidates:
        return []
    popularity = {t.key: t.users for t in store.tally(window, item,
                                                      keys=[t.key for t in candidates])}
    total = answers["total"]
    rows: list[dict[str, Any]] = []
    for t in candidates:
        lift = t.users * total / (len(peers) * popularity[t.key])
        rows.append({"key": t.key, "lift": _round(lift), "co_users": t.users,
                     "users": popularity[t.key]})
    rows.sort(key=lambda r: (-r["lift"], -r["co_users"], r["key"]))
    return rows[:size]


def recent_days(p: Params) -> tuple[datetime, datetime]:
    """The last ``days`` UTC days, today included (with ``to``: the days before it): their
    start, and the end of the window (``to``, or now). Whole days, so the database store's
    rollups hold the window exactly."""
    now = now_of(p)
    today = day_floor(now - timedelta(microseconds=1)) if p.end else day_floor(now)
    return today - timedelta(days=p.days - 1), now


def also_read(store: Store, p: Params, article: str, user: str | None) -> dict[str, Any]:
    """"Readers of this article also read", over the last ``days`` UTC days (``recent_days``).

    Readers are the signed-in users who viewed the article (at most ``MAX_READERS``); each other
    article they viewed is ranked by lift (see ``_lift``), needing ``MIN_SUPPORT`` co-readers.
    The article itself and every article ``user`` ever viewed are left out.
    """
    start, now = recent_days(p)
    filters: dict[str, Any] = {"actions": [VIEW]}
    window = where(**filters, start=start, end=now)
    questions: dict[str, Callable[[], Any]] = {"readers": lambda: store.users(
        where(**filters, target=article, start=start, end=now), limit=MAX_READERS)}
    if user is not None:
        questions["read"] = lambda: store.tally(where(**filters, user=user), TARGET,
                                                size=CANDIDATES * 10)
    answers = gather(store, questions, chain=True)
    exclude = {article} | {t.key for t in answers.get("read", [])}
    peers = [r for r in answers["readers"] if r != user]
    rows = _lift(store, window, TARGET, peers, exclude, p.size, filters)
    return {"article": article, "days": p.days, "readers": len(peers),
            "results": [{"article": r.pop("key"), **r} for r in rows]}


def communities_for_you(store: Store, p: Params, user: str) -> dict[str, Any]:
    """Communities used by people who share the user's communities, ranked by lift.

    The user's communities are those of their events in the last ``days`` UTC days
    (``recent_days``); peers are the
    other users active there (at most ``MAX_READERS``). With no history the most used
    communities (by distinct users) are suggested instead.
    """
    start, now = recent_days(p)
    filters: dict[str, Any] = {"has": COMMUNITY}
    window = where(**filters, start=start, end=now)
    mine = [t.key for t in store.tally(where(user=user, start=start, end=now), COMMUNITY,
                                       size=CANDIDATES)]
    if not mine:
        popular = store.tally(window, COMMUNITY, size=p.size)
        return {"user": user, "days": p.days, "basis": "popular",
                "results": [{"community": t.key, "users": t.users} for t in popular]}
    peers = [u for u in store.users(where(communities=mine, start=start, end=now),
                                    limit=MAX_READERS + 1) if u != user][:MAX_READERS]
    rows = _lift(store, window, COMMUNITY, peers, set(mine), p.size, filters)
    return {"user": user, "days": p.days, "basis": "peers",
            "results": [{"community": r.pop("key"), **r} for r in rows]}


def _period(p: Params) -> dict[str, Any]:
    return {"from": p.start.isoformat() if p.start else None,
            "to": (p.end or p.now).isoformat()}


def freshness(store: Store, p: Params, *, community: str | None = None,
              user: str | None = None) -> dict[str, Any]:
    count, newest = store.freshness(where(p, community=community, user=user, timeless=True))
    return {"events": count, "newest": newest.isoformat() if newest else None}


