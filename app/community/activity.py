"""Deterministic, back-dated activity history for the demo site, built by Event Trail's builder."""
from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from eventtrail.capture import Draft, draft_for
from eventtrail.ids import uuid7
from eventtrail.privacy import session_hash

from community import states
from community.models import Article, Community, Membership, Revision

BROWSERS = [
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", 40),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 25),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.2 Safari/605.1.15", 20),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1", 15),
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
]
SEARCH_TERMS = ["tomatoes", "compost", "espresso", "grinder", "trail shoes", "basic", "z80",
                "birds", "watering", "crema", "hills", "retro"]


def _shortest_paths() -> dict[str, list[str]]:
    """For each state, the states passed through from draft, along the state machine's table."""
    paths: dict[str, list[str]] = {states.State.DRAFT: []}
    frontier = [states.State.DRAFT]
    while frontier:
        source = frontier.pop(0)
        for t in states.TRANSITIONS.values():
            if t.source == source and t.target not in paths:
                paths[t.target] = [*paths[source], t.target]
                frontier.append(t.target)
    return paths


PATHS = _shortest_paths()


@dataclass
class Person:
    id: str
    name: str
    roles: list[str]
    weight: float
    communities: list[str]
    browser: str


@dataclass
class Site:
    """What the generator needs to know about the site, read once."""

    people: list[Person]
    communities: dict[str, str]  # slug -> id
    readable: dict[str, list[tuple[str, datetime]]]  # slug -> (article id, published at)
    articles: list[Article] = field(default_factory=list)
    memberships: list[Membership] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    videos: dict[str, str] = field(default_factory=dict)  # article id -> video id


def load_site(rng: random.Random) -> Site:
    communities = {c.slug: str(c.pk) for c in Community.objects.order_by("pk")}
    memberships = list(Membership.objects.select_related("user", "community").order_by("pk"))
    by_user: dict[int, list[str]] = {}
    moderators: set[int] = set()
    for m in memberships:
        by_user.setdefault(m.user_id, []).append(m.community.slug)
        if m.role == Membership.Role.MODERATOR:
            moderators.add(m.user_id)
    from django.contrib.auth import get_user_model

    people = []
    for rank, user in enumerate(get_user_model().objects.order_by("pk")):
        roles = (["superuser"] if user.is_superuser else []) + (
            ["staff"] if user.is_staff else []) + (["moderator"] if user.pk in moderators else [])
        people.append(Person(
            id=str(user.pk), name=user.get_username(), roles=roles,
            weight=1.0 / (rank % 17 + 1) ** 0.8,  # a few very active users, a long tail
            communities=by_user.get(user.pk, []) or list(communities)[:1],
            browser=_pick(rng, BROWSERS),
        ))
    articles = list(Article.objects.select_related("community").order_by("pk"))
    readable: dict[str, list[tuple[str, datetime]]] = {slug: [] for slug in communities}
    for article in articles:
        if article.state in states.PUBLIC_STATES:
            readable[article.community.slug].append((str(article.pk), article.created_at))
    revisions = list(Revision.objects.filter(number__gt=1).order_by("pk"))
    # The id the article page gives its video (data-eventtrail-video="article-<pk>").
    videos = {str(a.pk): f"article-{a.pk}" for a in articles if a.video}
    return Site(people, communities, readable, articles, memberships, revisions, videos)


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


class Generator:
    """Makes drafts; ``drafts()`` yields them in no particular order, all deterministic."""

    def __init__(self, site: Site, *, days: int, events: int, seed: int, until: datetime):
        self.site = site
        self.days = days
        self.target = events
        self.rng = random.Random(seed)
        self.until = until
        self.start = until - timedelta(days=days)
        # A few articles per community rise over the last days.
        self.rising = {
            slug: set(self.rng.sample([a for a, _ in items], min(2, len(items))))
            for slug, items in site.readable.items()
            if items
        }

    def _ns(self, moment: datetime) -> int:
        return int(moment.timestamp() * 1_000_000_000)

    def _draft(self, action: str, moment: datetime, fields: dict[str, Any], *,
               person: Person | None = None, session: str | None = None, ua: str | None = None,
               path: str | None = None, status: int = 200, method: str = "GET") -> Draft:
        rng = self.rng
        values: dict[str, Any] = {"event.id": uuid7(ms=self._ns(moment) // 1_000_000, rng=rng)}
        if person is not None:
            values.update({"user.id": person.id, "user.name": person.name,
                           "user.roles": list(person.roles)})
        if session:
            values["eventtrail.session.hash"] = session
        if path:
            values.update({"url.path": path, "http.request.method": method,
                           "http.response.status_code": status,
                           "user_agent.original": ua or (person.browser if person else BROWSERS[0][0])})
        values.update(fields)
        duration = int(rng.lognormvariate(math.log(25_000_000), 0.6)) if path else None
        remote = f"198.51.{rng.randrange(0, 4)}.{rng.randrange(1, 255)}" if path else None
        return draft_for(action, values, at_ns=self._ns(moment), remote=remote,
                         duration_ns=duration)

    def _span(self, created: datetime) -> float:
        """Seconds after an article's creation its transitions and edits fall in: up to the end
        of the period (nothing from the future, even for an article written just before it),
        or an hour for one written after it."""
        if created < self.until:
            return (self.until - created).total_seconds()
        return 3600.0

    # --- content history: every article's creation, transitions, edits; every join ----------
    def content(self) -> Iterator[Draft]:
        site = self.site
        people = {p.id: p for p in site.people}
        for m in site.memberships:
            yield self._draft("community.join", m.joined_at, {
                "eventtrail.community.id": str(m.community_id),
                "eventtrail.community.slug": m.community.slug,
                "eventtrail.source": "signal"}, person=people.get(str(m.user_id)))
        for article in site.articles:
            target = {"eventtrail.community.id": str(article.community_id),
                      "eventtrail.community.slug": article.community.slug,
                      "eventtrail.target.type": "article", "eventtrail.target.id": str(article.pk),
                      "eventtrail.source": "signal"}
            author = people.get(str(article.author_id))
            created = article.created_at
            yield self._draft("article.create", created,
                              {**target, "eventtrail.target.state": str(states.State.DRAFT)}, person=author)
            span = self._span(created)
            previous, moments = str(states.State.DRAFT), sorted(
                self.rng.uniform(0.05, 0.9) * span for _ in PATHS[article.state])
            for state, offset in zip(PATHS[article.state], moments, strict=True):
                yield self._draft("article.state_change", created + timedelta(seconds=offset), {
                    **target, "eventtrail.target.state": str(state),
                    "eventtrail.target.previous_state": previous}, person=author)
                previous = str(state)
        for revision in site.revisions:
            article = next(a for a in site.articles if a.pk == revision.article_id)
            # Seeded revisions carry the seed's own time; an edit happened between the
            # article's creation and the end of the period, like its transitions.
            created = article.created_at
            span = self._span(created)
            moment = created + timedelta(seconds=self.rng.uniform(0.05, 0.95) * span)
            yield self._draft("article.edit", min(moment, revision.created_at), {
                "eventtrail.community.id": str(article.community_id),
                "eventtrail.community.slug": article.community.slug,
                "eventtrail.target.type": "article", "eventtrail.target.id": str(article.pk),
                "eventtrail.target.state": str(article.state), "eventtrail.source": "signal",
            }, person=people.get(str(revision.editor_id)))

    # --- browsing sessions -------------------------------------------------------------------------
    def _article(self, slug: str, moment: datetime) -> str | None:
        items = [(a, at) for a, at in self.site.readable.get(slug, []) if at <= moment]
        if not items:
            return None
        days_left = (self.until - moment).total_seconds() / 86400
        weights = []
        for rank, (article, _) in enumerate(items):
            weight = 1.0 / (rank + 1) ** 0.9
            if article in self.rising.get(slug, ()) and days_left < 4:
                weight *= 12.0  # rising in the last days
            weights.append(weight)
        return self.rng.choices([a for a, _ in items], weights)[0]

    def session(self) -> Iterator[Draft]:
        rng, site = self.rng, self.site
        # Late days get a little more traffic: a growing site.
        day = min(int(self.days * rng.random() ** 0.8), self.days - 1)
        moment = self.start + timedelta(days=day, seconds=rng.uniform(0, 86400))
        if rng.random() < 0.03:  # a crawler walks public pages
            ua = rng.choice(BOTS)
            for _ in range(rng.randint(3, 10)):
                slug = rng.choice(list(site.communities))
                article = self._article(slug, moment)
                if article:
                    yield self._draft("article.view", moment, self._target(slug, article),
                                      ua=ua, path=f"/c/{slug}/a/{article}/")
                moment += timedelta(seconds=rng.uniform(1, 5))
            return
        anonymous = rng.random() < 0.15
        person = None if anonymous else rng.choices(site.people, [p.weight for p in site.people])[0]
        session = session_hash(f"demo-session-{rng.getrandbits(64):x}")
        ua = person.browser if person else _pick(rng, BROWSERS)
        if person and rng.random() < 0.3:
            if rng.random() < 0.08:
                yield self._draft("user.login_failed", moment, {"user.name": person.name,
                                  "event.outcome": "failure", "eventtrail.source": "signal"},
                                  ua=ua, path="/accounts/login/", method="POST")
                moment += timedelta(seconds=rng.uniform(5, 20))
            yield self._draft("user.login", moment, {"eventtrail.source": "signal"}, person=person,
                              session=session, ua=ua, path="/accounts/login/", method="POST")
        home = rng.random() < 0.4
        if home:
            yield self._draft("page.view", moment, {}, person=person, session=session, ua=ua,
                              path="/")
        slugs = person.communities if person and rng.random() < 0.8 else list(site.communities)
        for _ in range(rng.randint(1, 8)):
            moment += timedelta(seconds=rng.uniform(5, 240))
            slug = rng.choice(slugs)
            roll = rng.random()
            if roll < 0.25:
                yield self._draft("community.view", moment, self._community(slug), person=person,
                                  session=session, ua=ua, path=f"/c/{slug}/")
            elif roll < 0.9:
                article = self._article(slug, moment)
                if article:
                    yield self._draft("article.view", moment, self._target(slug, article),
                                      person=person, session=session, ua=ua,
                                      path=f"/c/{slug}/a/{article}/")
                    yield from self._reading(slug, article, moment, person, session, ua)
            elif roll < 0.96:
                term = rng.choice(SEARCH_TERMS)
                yield self._draft("article.search", moment, {"eventtrail.search.query": term},
                                  person=person, session=session, ua=ua, path="/search/")
            else:
                # A stale link: the article URL resolves, so capture records article.view with
                # its target, and the failure (404, or a 500) is in its status and outcome.
                status = rng.choice([404, 404, 404, 500])
                missing = str(rng.randint(9000, 9999))
                yield self._draft("article.view", moment, self._target(slug, missing),
                                  person=person, session=session, ua=ua,
                                  path=f"/c/{slug}/a/{missing}/", status=status)

    def _reading(self, slug: str, article: str, moment: datetime, person: Person | None,
                 session: str, ua: str) -> Iterator[Draft]:
        """What the browser script sends while the article is read: scroll depth reached
        (once per quartile) and, on the article with the demo video, how far it was watched."""
        rng = self.rng
        # As the collector builds them: the page's path and the agent, no HTTP status of its own.
        page = {**self._target(slug, article), "url.path": f"/c/{slug}/a/{article}/",
                "user_agent.original": ua, "eventtrail.source": "browser"}
        browser = {"person": person, "session": session}
        at = moment
        reached = rng.choices([0, 25, 50, 75, 100], [10, 15, 25, 20, 30])[0]
        for depth in (25, 50, 75, 100):
            if depth > reached:
                break
            at += timedelta(seconds=rng.uniform(3, 40))
            yield self._draft("browser.scroll", at, {
                **page, "eventtrail.browser.scroll_depth": depth}, **browser)
        video = self.site.videos.get(article)
        if video is None or rng.random() < 0.4:
            return
        base = {**page, "eventtrail.video.id": video, "eventtrail.video.duration": 3.0}
        at += timedelta(seconds=rng.uniform(1, 10))
        yield self._draft("video.play", at, {**base, "eventtrail.video.position": 0.0},
                          **browser)
        watched = rng.choices([25, 50, 75, 100], [20, 15, 15, 50])[0]
        for quartile in (25, 50, 75, 100):
            if quartile > watched:
                break
            at += timedelta(seconds=0.75)
            yield self._draft("video.progress", at, {
                **base, "eventtrail.video.position": 3.0 * quartile / 100,
                "eventtrail.video.progress": quartile}, **browser)
        if watched == 100:
            yield self._draft("video.ended", at, {**base, "eventtrail.video.position": 3.0},
                              **browser)

    def _community(self, slug: str) -> dict[str, Any]:
        return {"eventtrail.community.slug": slug,
                "eventtrail.community.id": self.site.communities[slug]}

    def _target(self, slug: str, article: str) -> dict[str, Any]:
        return {**self._community(slug), "eventtrail.target.type": "article",
                "eventtrail.target.id": article}

    def drafts(self) -> Iterator[Draft]:
        made = 0
        for draft in self.content():
            made += 1
            yield draft
        end = self._ns(self.until)
        while made < self.target:
            for draft in self.session():
                if draft.ts >= end:
                    break  # a session begun just before the end stops there: nothing later
                made += 1
                yield draft
                if made >= self.target:
                    return


def default_until() -> datetime:
    """Midnight UTC today: the same day gives the same history."""
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
