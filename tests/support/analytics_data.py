"""Events for the analytics tests (generated history plus crafted cases) and a Python oracle."""
from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from community.activity import Generator, load_site
from eventtrail import schema
from eventtrail.build import prepare
from eventtrail.capture import draft_for

CRAFT = "craft-lab"
READS = "craft-reads"  # the co-view case lives in a community of its own
STEADY, RISING, REPEATED, BROAD = "9001", "9002", "9003", "9004"
SEED_ARTICLE, NICHE, POPULAR, SINGLE, ALREADY = "9201", "9202", "9203", "9204", "9205"
READERS = [str(9301 + i) for i in range(6)]  # READERS[-1] asks for recommendations
CROWD = [str(9400 + i) for i in range(30)]
MISSING, HIDDEN = "987654", "9206"  # requested, never served: a 404 each time
DEPTH = "reading-lab"  # reading depth and video completion; sorts after the tested communities
DEEP, SKIM, SHORT, UNREAD = "9501", "9502", "9503", "9504"
# article -> (views, scroll events reaching 25, 50, 75, 100): SHORT has an extra full scroll
# (a page restored from the back-forward cache), so its share is capped at 1.
SCROLLS = {DEEP: (8, (8, 7, 5, 4)), SKIM: (5, (3, 1, 0, 0)), SHORT: (2, (3, 3, 3, 3)),
           UNREAD: (1, (0, 0, 0, 0))}
# video -> (plays, progress events at 25, 50, 75, 100, ended)
# (9502 and 9503 tie on plays: the video id breaks the tie, as on every store)
VIDEOS = {"article-9501": (6, (5, 4, 3, 2), 2), "article-9503": (2, (2, 2, 2, 2), 2),
          "article-9502": (2, (1, 0, 0, 0), 0)}


def _view(at: datetime, user: str | None, article: str, community: str = CRAFT,
          status: int = 200) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "eventtrail.community.slug": community, "eventtrail.community.id": "999",
        "eventtrail.target.type": "article", "eventtrail.target.id": article,
        "url.path": f"/c/{community}/a/{article}/", "http.request.method": "GET",
        "http.response.status_code": status,
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101",
    }
    if user is not None:
        fields.update({"user.id": user, "user.name": f"reader{user}"})
    return draft_for("article.view", fields, at_ns=int(at.timestamp() * 1e9), remote="10.9.9.9")


def crafted(until: datetime) -> list[dict[str, Any]]:
    """Trending: steady (3 viewers a day for 20 days), rising (4 a day in the last 3 days),
    repeated (one user, 12 views today), broad (12 users once today). Co-views: see READERS."""
    today = until - timedelta(days=1)
    out = []
    for day in range(20):
        at = today - timedelta(days=day) + timedelta(hours=10)
        for i in range(3):
            out.append(_view(at + timedelta(minutes=i), f"95{i:02d}", STEADY))
    for day in range(3):
        at = today - timedelta(days=day) + timedelta(hours=11)
        for i in range(4):
            out.append(_view(at + timedelta(minutes=i), f"96{i:02d}", RISING))
    for i in range(12):
        out.append(_view(today + timedelta(hours=12, minutes=i), "9700", REPEATED))
        out.append(_view(today + timedelta(hours=13, minutes=i), f"98{i:02d}", BROAD))
    at = today - timedelta(days=2) + timedelta(hours=9)
    for n, reader in enumerate(READERS):
        out.append(_view(at + timedelta(minutes=n), reader, SEED_ARTICLE, READS))
    for reader in READERS[:5]:
        out.append(_view(at + timedelta(hours=1), reader, NICHE, READS))
    for reader in READERS[:3] + CROWD:
        out.append(_view(at + timedelta(hours=2), reader, POPULAR, READS))
    out.append(_view(at + timedelta(hours=3), READERS[0], SINGLE, READS))
    for reader in READERS[:4] + READERS[-1:]:
        out.append(_view(at + timedelta(hours=4), reader, ALREADY, READS))
    out.append(_view(at + timedelta(hours=5), None, NICHE, READS))  # anonymous: a view, no reader
    # Failed views count nowhere: 25 anonymous 404s of an article that does not exist (it would
    # be CRAFT's #2), a reader's 404s of a hidden draft (they would make it their most read, and
    # a co-read of SEED_ARTICLE), and 403s and a 500 of POPULAR by the asking reader (who has
    # not read it, so it stays recommendable).
    for i in range(25):
        out.append(_view(today + timedelta(hours=14, seconds=i), None, MISSING, status=404))
    for i in range(31):
        for reader in READERS[:3]:
            out.append(_view(at + timedelta(hours=6, seconds=i), reader, HIDDEN, READS, 404))
    for status in (403, 403, 500, 302):
        out.append(_view(at + timedelta(hours=7), READERS[-1], POPULAR, READS, status))
    for day, article in ((1, STEADY), (1, RISING), (4, STEADY)):  # the seed has no edits
        out.append(draft_for("article.edit", {
            "eventtrail.community.slug": CRAFT, "eventtrail.community.id": "999",
            "eventtrail.target.type": "article", "eventtrail.target.id": article,
            "eventtrail.target.state": "published", "eventtrail.source": "signal",
            "user.id": "9500", "user.name": "reader9500",
        }, at_ns=int((today - timedelta(days=day, hours=-8)).timestamp() * 1e9)))
    # New or returning by the week from a Thursday three weeks back: a user whose first event
    # ever is that week's Tuesday, before the period, and who comes back the week after.
    monday = until - timedelta(days=until.weekday() + 21)
    for at in (monday + timedelta(days=1, hours=10), monday + timedelta(days=10, hours=10)):
        out.append(draft_for("user.login", {"user.id": "9900", "user.name": "reader9900",
                                            "eventtrail.source": "signal"},
                             at_ns=int(at.timestamp() * 1e9)))
    return out


def _browser(action: str, at: datetime, user: str, article: str,
             fields: dict[str, Any]) -> dict[str, Any]:
    return draft_for(action, {
        "eventtrail.community.slug": DEPTH, "eventtrail.community.id": "998",
        "eventtrail.target.type": "article", "eventtrail.target.id": article,
        "url.path": f"/c/{DEPTH}/a/{article}/", "eventtrail.source": "browser",
        "user.id": user, "user.name": f"reader{user}", **fields,
    }, at_ns=int(at.timestamp() * 1e9), remote="10.9.9.8")


def engagement(until: datetime) -> list[dict[str, Any]]:
    """Views and scroll events per article (SCROLLS) and video events (VIDEOS), two days ago."""
    at = until - timedelta(days=2, hours=-8)
    out = []
    for n, (article, (views, reached)) in enumerate(SCROLLS.items()):
        for i in range(views):
            out.append(_view(at + timedelta(minutes=n * 10 + i), f"99{i:02d}", article, DEPTH))
        for depth, count in zip((25, 50, 75, 100), reached, strict=True):
            for i in range(count):
                out.append(_browser("browser.scroll", at + timedelta(minutes=n * 10 + i, seconds=5),
                                    f"99{i:02d}", article,
                                    {"eventtrail.browser.scroll_depth": depth}))
    for video, (plays, progress, ended) in VIDEOS.items():
        article = video.removeprefix("article-")
        media = {"eventtrail.video.id": video, "eventtrail.video.duration": 120.0}
        later = at + timedelta(hours=1)
        for i in range(plays):
            out.append(_browser("video.play", later + timedelta(minutes=i), f"99{i:02d}", article,
                                {**media, "eventtrail.video.position": 0.0}))
        for quartile, count in zip((25, 50, 75, 100), progress, strict=True):
            for i in range(count):
                out.append(_browser("video.progress", later + timedelta(minutes=i, seconds=30),
                                    f"99{i:02d}", article,
                                    {**media, "eventtrail.video.position": 1.2 * quartile,
                                     "eventtrail.video.progress": quartile}))
        for i in range(ended):
            out.append(_browser("video.ended", later + timedelta(minutes=i, seconds=50),
                                f"99{i:02d}", article, {**media, "eventtrail.video.position": 120.0}))
    return out


def build(until: datetime, events: int) -> list[str]:
    site = load_site(random.Random(1))
    generator = Generator(site, days=30, events=events, seed=1, until=until)
    docs = []
    for draft in [*generator.drafts(), *crafted(until), *engagement(until)]:
        prepared = prepare(draft)
        assert prepared is not None
        docs.append(prepared[1])
    return docs


# --- oracle: plain Python over the stored documents ---------------------------------------------


def flat_events(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for doc in documents:
        flat = schema.flatten(json.loads(json.dumps(doc)))
        flat["_ts"] = datetime.fromisoformat(flat["@timestamp"].replace("Z", "+00:00"))
        out.append(flat)
    return out


def human(events, start=None, end=None, action=None, community=None, user=None, bots=False):
    for e in events:
        if e.get("eventtrail.bot") and not bots:
            continue
        if start and e["_ts"] < start or end and e["_ts"] >= end:
            continue
        if action and e["event.action"] not in (action if isinstance(action, tuple) else (action,)):
            continue
        if action == "article.view" and not 200 <= e.get("http.response.status_code", 0) < 300:
            continue  # a view is a read only when the page was served
        if community and e.get("eventtrail.community.slug") != community:
            continue
        if user and e.get("user.id") != user:
            continue
        yield e


def trending(events, community, now, days=10, half_life=3.0):
    today = (now - timedelta(microseconds=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    views: dict[str, dict[datetime, list[str | None]]] = defaultdict(lambda: defaultdict(list))
    for e in human(events, start - timedelta(days=days), now, "article.view", community):
        if e.get("eventtrail.target.type") == "article":
            day = e["_ts"].replace(hour=0, minute=0, second=0, microsecond=0)
            views[e["eventtrail.target.id"]][day].append(e.get("user.id"))
    scores = {}
    for article, by_day in views.items():
        heat = previous = 0.0
        for day, who in by_day.items():
            distinct = len({u for u in who if u is not None})
            weight = distinct + 0.25 * (len(who) - distinct)
            if day >= start:
                heat += math.pow(2, -(today - day).days / half_life) * weight
            else:
                age = (start - timedelta(days=1) - day).days
                previous += math.pow(2, -age / half_life) * weight
        if heat > 0:
            momentum = min(max((heat + 1) / (previous + 1), 0.25), 4.0)
            scores[article] = heat * momentum
    return sorted(scores.items(), key=lambda kv: (-round(kv[1], 4), kv[0]))


def most_viewed(events, start=None, end=None, community=None, user=None, bots=False):
    views, viewers = Counter(), defaultdict(set)
    for e in human(events, start, end, "article.view", community, user, bots):
        if e.get("eventtrail.target.type") != "article":
            continue
        views[e["eventtrail.target.id"]] += 1
        if e.get("user.id"):
            viewers[e["eventtrail.target.id"]].add(e["user.id"])
    return sorted(((a, n, len(viewers[a])) for a, n in views.items()), key=lambda r: (-r[1], r[0]))


def user_articles(events, user, start=None, end=None):
    """The user's articles with the state the event log replays to."""
    mine = {e["eventtrail.target.id"] for e in human(events, action="article.create", user=user)}
    state = {}
    history = sorted(human(events, action=("article.create", "article.state_change")),
                     key=lambda e: (e["_ts"], e["event.id"]))
    for e in history:
        if e["eventtrail.target.id"] in mine:
            state[e["eventtrail.target.id"]] = e["eventtrail.target.state"]
    views = {a: n for a, n, _ in most_viewed(events, start, end)}
    return {a: (state[a], views.get(a, 0)) for a in mine}


def days_between(start, end):
    out, day = [], start
    while day < end:
        out.append(day)
        day += timedelta(days=1)
    return out


def _day(e):
    return e["_ts"].replace(hour=0, minute=0, second=0, microsecond=0)


def active_users(events, start, end, community=None):
    users = defaultdict(set)
    for e in human(events, start, end, community=community):
        if e.get("user.id"):
            users[_day(e)].add(e["user.id"])
    return [len(users[d]) for d in days_between(start, end)]


def distinct_users(events, start, end, community=None):
    return len({e["user.id"] for e in human(events, start, end, community=community)
                if e.get("user.id")})


def events_by_action(events, start, end, community=None, user=None):
    counts = defaultdict(Counter)
    for e in human(events, start, end, community=community, user=user):
        counts[e["event.action"]][_day(e)] += 1
    return {a: [c[d] for d in days_between(start, end)] for a, c in counts.items()}


def content_changes(events, start, end, community=None):
    counts = defaultdict(Counter)
    for e in human(events, start, end, ("article.create", "article.edit", "article.state_change"),
                   community):
        if e.get("eventtrail.target.type") != "article":
            continue
        name = {"article.create": "created", "article.edit": "edited"}.get(e["event.action"])
        counts[name or "→ " + e["eventtrail.target.state"]][_day(e)] += 1
    return {n: [c[d] for d in days_between(start, end)] for n, c in counts.items()}


def new_returning(events, start, end, community=None, week=False):
    """Per day (or Monday-first UTC week: ``week``) from ``start``: new and returning users."""
    def unit(ts):
        day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday()) if week else day

    first = {}
    for e in human(events, community=community):
        if e.get("user.id"):
            u = e["user.id"]
            first[u] = min(first.get(u, e["_ts"]), e["_ts"])
    new, back = Counter(), Counter()
    seen = set()
    for e in human(events, start, end, community=community):
        if not e.get("user.id") or (e["user.id"], unit(e["_ts"])) in seen:
            continue
        seen.add((e["user.id"], unit(e["_ts"])))
        if unit(e["_ts"]) == unit(first[e["user.id"]]):
            new[unit(e["_ts"])] += 1
        else:
            back[unit(e["_ts"])] += 1
    units = sorted({unit(d) for d in days_between(start, end)})
    return [new[d] for d in units], [back[d] for d in units]


def top_members(events, start, end, community=None):
    counts = Counter(e["user.id"] for e in human(events, start, end, community=community)
                     if e.get("user.id"))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _lift(used: dict[str, set[str]], peers: set[str], exclude: set[str]):
    everyone = set().union(*used.values()) if used else set()
    rows = []
    for item, users in used.items():
        co = len(users & peers)
        if item in exclude or co < 2:
            continue
        rows.append((item, round(co * len(everyone) / (len(peers) * len(users)), 4), co))
    return sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))


def also_read(events, article, user, now, days=30):
    """``now`` is the request's ``to``, a UTC midnight: the last ``days`` UTC days before it."""
    used = defaultdict(set)
    for e in human(events, now - timedelta(days=days), now, "article.view"):
        if e.get("user.id") and e.get("eventtrail.target.type") == "article":
            used[e["eventtrail.target.id"]].add(e["user.id"])
    read = {e["eventtrail.target.id"] for e in human(events, action="article.view", user=user)
            if e.get("eventtrail.target.type") == "article"}
    return _lift(used, used.get(article, set()) - {user}, read | {article})


def communities_for_you(events, user, now, days=30):
    used = defaultdict(set)
    for e in human(events, now - timedelta(days=days), now):
        if e.get("user.id") and e.get("eventtrail.community.slug"):
            used[e["eventtrail.community.slug"]].add(e["user.id"])
    mine = {c for c, users in used.items() if user in users}
    peers = set().union(*(used[c] for c in mine)) - {user} if mine else set()
    return _lift(used, peers, mine)


def _capped(part, whole):
    return round(min(part / whole, 1.0), 4) if whole else None


def reading_depth(events, start=None, end=None, community=None):
    """(article, views, [scroll events reaching 25, 50, 75, 100], [shares]), most viewed first."""
    rows = most_viewed(events, start, end, community)
    reached = Counter()
    for e in human(events, start, end, "browser.scroll", community):
        if e.get("eventtrail.target.type") == "article":
            reached[e["eventtrail.target.id"], e["eventtrail.browser.scroll_depth"]] += 1
    out = []
    for article, views, _ in rows:
        counts = [reached[article, d] for d in (25, 50, 75, 100)]
        out.append((article, views, counts, [_capped(n, views) for n in counts]))
    return out


def video_completion(events, start=None, end=None, community=None):
    """(video, plays, [progress events at 25, 50, 75, 100], ended, completion), most played."""
    plays, ended, progress = Counter(), Counter(), Counter()
    for e in human(events, start, end, ("video.play", "video.progress", "video.ended"), community):
        video = e["eventtrail.video.id"]
        if e["event.action"] == "video.play":
            plays[video] += 1
        elif e["event.action"] == "video.ended":
            ended[video] += 1
        else:
            progress[video, e["eventtrail.video.progress"]] += 1
    return [(v, n, [progress[v, q] for q in (25, 50, 75, 100)], ended[v], _capped(ended[v], n))
            for v, n in sorted(plays.items(), key=lambda kv: (-kv[1], kv[0]))]
