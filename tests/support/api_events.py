"""Deterministic fixture events for the API tests, and a plain-Python oracle over them."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from eventtrail import schema
from eventtrail.build import prepare
from eventtrail.capture import draft_for
from eventtrail.privacy import pseudonym
from eventtrail.stores import fields as registry
from eventtrail.stores.query import ListQuery, Term, Where

N_EVENTS = 3000
START = datetime(2026, 10, 1, tzinfo=UTC)
USERS = list(range(1, 13))  # user pks 1..12
PSEUDO_USER = 99  # events stored under pseudonym(99), as pseudonymised capture writes them
COMMUNITIES = ["alpha", "beta", "gamma"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "curl/8.5.0",
]
SEARCHES = ["django rest", "Elastic Search", "100% pure", "under_score", "star*power"]


def drafts() -> list[dict[str, Any]]:
    rng = random.Random(20261001)
    out = []
    for i in range(N_EVENTS):
        at = START + timedelta(seconds=i * 997 + rng.randint(0, 400))
        # Quiet stretches make the histograms' filled empty buckets matter.
        if 10 <= (at - START).days <= 12:
            at += timedelta(days=3)
        kind = rng.choices(
            ["page.view", "user.login", "user.login_failed", "browser.scroll", "video.progress"],
            weights=[60, 10, 5, 15, 10],
        )[0]
        user: int | None = rng.choice(USERS) if rng.random() < 0.8 else None
        if i % 97 == 0:
            user = PSEUDO_USER
        fields: dict[str, Any] = {}
        if user is not None:
            fields["user.id"] = pseudonym(user) if user == PSEUDO_USER else str(user)
            if user != PSEUDO_USER:
                fields["user.name"] = f"{'User' if user % 2 else 'member'}{user}"
        community = rng.choice([*COMMUNITIES, None])
        if community:
            fields["eventtrail.community.slug"] = community
            fields["eventtrail.community.id"] = str(COMMUNITIES.index(community) + 1)
        agent = rng.choices(AGENTS, weights=[30, 30, 25, 8, 7])[0]
        duration = None
        if kind == "page.view":
            article = rng.randint(1, 40)
            fields.update(
                {
                    "url.path": f"/c/{community or 'home'}/articles/{article}/",
                    "http.request.method": rng.choice(["GET", "GET", "GET", "POST"]),
                    "http.response.status_code": rng.choice([200, 200, 200, 302, 404, 500]),
                    "user_agent.original": agent,
                    "eventtrail.target.type": "article",
                    "eventtrail.target.id": str(article),
                }
            )
            duration = rng.randint(1, 500) * 1_000_000
            if rng.random() < 0.1:
                fields["eventtrail.search.query"] = rng.choice(SEARCHES)
        elif kind == "user.login_failed":
            fields["event.outcome"] = "failure"
            fields["user_agent.original"] = agent
        elif kind == "user.login":
            fields["event.outcome"] = "success"
            fields["user_agent.original"] = agent
        elif kind == "browser.scroll":
            fields["eventtrail.browser.scroll_depth"] = rng.choice([25, 50, 75, 100])
            fields["user_agent.original"] = agent
        else:
            fields.update(
                {
                    "eventtrail.video.id": f"v{rng.randint(1, 5)}",
                    "eventtrail.video.position": round(rng.uniform(0, 600), 2),
                    "eventtrail.video.duration": 600.0,
                    "eventtrail.video.progress": rng.choice([25, 50, 75, 100]),
                    "user_agent.original": agent,
                }
            )
        ns = int(at.timestamp()) * 1_000_000_000 + rng.randint(0, 999) * 1_000_000
        ip = f"10.{i % 3}.{rng.randint(0, 3)}.{rng.randint(1, 9)}"
        out.append(draft_for(kind, fields, at_ns=ns, remote=ip, duration_ns=duration))
    return out


def build() -> list[str]:
    """The events as delivery serialises them."""
    docs = []
    for draft in drafts():
        prepared = prepare(draft)
        assert prepared is not None
        docs.append(prepared[1])
    return docs


# --- the oracle ------------------------------------------------------------------------------


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _typed(name: str, value: Any) -> Any:
    if value is not None and registry.FIELDS[name].kind == "date":
        return parse_ts(value)
    return value


def _term_hits(flat: dict[str, Any], term: Term) -> bool:
    for name in registry.TEXT_FIELDS:
        value = flat.get(name)
        if isinstance(value, str):
            low = value.lower()
            if low.startswith(term.text) if term.prefix else term.text in low:
                return True
    return False


def matches(flat: dict[str, Any], where: Where) -> bool:
    for f in where.filters:
        value = _typed(f.field, flat.get(f.field))
        if f.lookup == "exists":
            if (value is not None) != f.value:
                return False
        elif f.lookup == "exact":
            if value != f.value:
                return False
        elif f.lookup == "not":
            if value == f.value:
                return False
        elif f.lookup == "in":
            if value not in f.value:
                return False
        else:
            if value is None:
                return False
            ok = {
                "gt": value > f.value,
                "gte": value >= f.value,
                "lt": value < f.value,
                "lte": value <= f.value,
            }[f.lookup]
            if not ok:
                return False
    ts = parse_ts(flat["@timestamp"])
    if where.start and ts < where.start:
        return False
    if where.end and ts >= where.end:
        return False
    if where.text:
        for group in where.text.groups:
            if not any(_term_hits(flat, t) for t in group):
                return False
        if any(_term_hits(flat, t) for t in where.text.excluded):
            return False
    if not where.include_bots and flat.get("eventtrail.bot"):
        return False
    if where.scope is not None:
        mine = where.scope.user_id is not None and flat.get("user.id") == where.scope.user_id
        theirs = flat.get("eventtrail.community.slug") in where.scope.communities
        if not (mine or theirs):
            return False
    return True


def ordered(events: list[dict[str, Any]], query: ListQuery) -> list[dict[str, Any]]:
    """Sorted as the API promises: by each key, missing values last, event.id breaking ties."""
    result = list(events)
    for key in reversed(query.sort):
        present = [e for e in result if e.get(key.field) is not None]
        missing = [e for e in result if e.get(key.field) is None]
        present.sort(key=lambda e, k=key.field: _typed(k, e[k]), reverse=key.descending)
        result = present + missing
    return result


def load_flat(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [schema.flatten(json.loads(json.dumps(d))) for d in documents]
