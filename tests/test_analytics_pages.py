"""The analytics pages: who may open which, server-rendered numbers, and the ETag'd poll."""
from __future__ import annotations

import re

import pytest
from community.models import Community, Membership
from django.contrib.auth import get_user_model
from django.test import Client
from eventtrail.delivery.sinks import DatabaseSink

from tests.support import analytics_data as data
from tests.support import analytics_fixtures as fixtures

pytestmark = pytest.mark.django_db(databases=["default", "events"])


@pytest.fixture
def database_store(settings, history):
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "STORE": "database",
                           "MODERATED_COMMUNITIES": "community.event_types.moderated_communities",
                           "TARGET_LABELS": "community.event_types.target_labels"}


def browser_for(username: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def an_author(history) -> str:
    author = sorted({e["user.id"] for e in data.human(history["events"], action="article.create")})[0]
    return get_user_model().objects.get(pk=int(author)).username


def test_my_activity_renders_tables_from_the_server(database_store, history):
    username = an_author(history)
    response = browser_for(username).get("/analytics/me/")
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("What I did", "Articles I read most", "My articles by state",
                  "Communities you may like"):
        assert title in html
    assert 'id="et-analytics-data"' in html and "eventtrail/analytics.js" in html
    assert re.search(r"<td>(draft|submitted|published|rejected|archived)</td>", html)
    # Article titles and links come from the demo's TARGET_LABELS hook.
    assert re.search(r'<td><a href="/c/[\w-]+/a/\d+/">', html)
    assert 'href="/analytics/me/"' in html  # the nav link


def test_the_poll_answers_304_until_an_event_arrives(database_store, history):
    username = an_author(history)
    client = browser_for(username)
    first = client.get("/analytics/me/data.json")
    assert first.status_code == 200 and first["ETag"]
    assert first.json()["panels"]
    again = client.get("/analytics/me/data.json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    user = get_user_model().objects.get(username=username)
    DatabaseSink("events").send([data.prepare(data._view(
        fixtures.UNTIL, str(user.pk), data.STEADY))[1]])
    changed = client.get("/analytics/me/data.json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    assert changed.json()["events"] == first.json()["events"] + 1


def test_nobody_opens_another_users_or_communitys_page(database_store, history):
    username = an_author(history)
    client = browser_for(username)
    other = get_user_model().objects.exclude(username=username).exclude(is_staff=True).first()
    assert client.get(f"/analytics/me/?user={other.pk}").status_code == 403
    assert client.get(f"/analytics/me/data.json?user={other.pk}").status_code == 403
    moderated = set(Membership.objects.filter(user__username=username,
                                              role=Membership.Role.MODERATOR)
                    .values_list("community__slug", flat=True))
    foreign = Community.objects.exclude(slug__in=moderated).first()
    assert client.get(f"/analytics/c/{foreign.slug}/").status_code == 403
    assert client.get(f"/analytics/c/{foreign.slug}/data.json").status_code == 403
    assert client.get("/analytics/site/").status_code == 403
    assert Client().get("/analytics/me/").status_code == 302  # to the login page


def test_moderators_and_staff_see_their_pages(database_store, history):
    username, slug = history["moderator"]
    response = browser_for(username).get(f"/analytics/c/{slug}/?period=90d")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Trending (last 10 days)" in html and "Most active members" in html
    assert f'href="/analytics/c/{slug}/"' in html  # nav link from the hook
    site = browser_for("analyst").get("/analytics/site/?period=all")
    assert site.status_code == 200 and "New and returning users" in site.content.decode()
    assert browser_for("analyst").get("/analytics/me/?user=1").status_code == 200
    bad = browser_for("analyst").get("/analytics/site/data.json?period=1000y")
    assert bad.status_code == 400 and bad.json()["errors"][0]["param"] == "period"
    page = browser_for("analyst").get("/analytics/site/?period=1000y")
    assert page.status_code == 400 and page.content.startswith(b"period:")


def test_reading_depth_and_video_completion_render_without_javascript(database_store, history):
    response = browser_for("analyst").get(f"/analytics/c/{data.DEPTH}/?period=7d")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Reading depth" in html and "Video completion" in html
    # DEEP: 8 views, 7 scrolls reached 50 %; SHORT is capped at 100 %.
    assert re.search(r"<td>8</td><td>8 \(100%\)</td><td>7 \(88%\)</td><td>5 \(62%\)</td>"
                     r"<td>4 \(50%\)</td>", html)
    assert re.search(r"<td>article-9501</td><td>6</td><td>5</td><td>4</td><td>3</td><td>2</td>"
                     r"<td>2</td><td>33%</td>", html)
    panels = {p["id"]: p for p in browser_for("analyst").get(
        f"/analytics/c/{data.DEPTH}/data.json?period=7d").json()["panels"]}
    assert panels["reading-depth"]["chart"]["datasets"][1]["data"][0] == 88
    assert panels["video-completion"]["chart"]["labels"][0] == "article-9501"
    site = browser_for("analyst").get("/analytics/site/data.json?period=7d").json()
    assert {"reading-depth", "video-completion"} <= {p["id"] for p in site["panels"]}


@pytest.fixture
def labelled(store, settings):
    settings.EVENTTRAIL = {**settings.EVENTTRAIL,
                           "TARGET_LABELS": "community.event_types.target_labels"}
    return store


def titles_in(payload) -> set[str]:
    return {cell["text"] for panel in payload["panels"] for row in panel["table"]["rows"]
            for cell in row if isinstance(cell, dict)}


def test_a_hidden_draft_asked_for_is_counted_nowhere_and_its_title_never_shown(labelled, history):
    """A member's 31 404s of another member's draft: not among the articles they read, its
    title nowhere on their page, their community's or the site's, on every store."""
    case = history["hidden_case"]
    member = browser_for(case["member"])
    mine = member.get("/analytics/me/data.json?period=all").json()
    read = next(p for p in mine["panels"] if p["id"] == "my-viewed")["table"]["rows"]
    oracle = data.most_viewed(history["events"], user=case["member_id"])
    assert case["hidden"] not in {a for a, _, _ in oracle}
    assert [r[1:] for r in read] == [[n, u] for _, n, u in oracle[:10]]
    assert case["shown_title"] in {r[0]["text"] for r in read}
    html = member.get("/analytics/me/?period=all").content.decode()
    assert case["hidden_title"] not in html and f"/a/{case['hidden']}/" not in html
    staff = browser_for("analyst")
    for url in ("/analytics/site/data.json?period=7d", "/analytics/site/data.json?period=all"):
        assert case["hidden_title"] not in titles_in(staff.get(url).json())
    body = staff.get(f"/api/analytics/user-most-viewed/?user={case['member_id']}").json()
    assert case["hidden"] not in {r["article"] for r in body["results"]}


def test_labels_follow_the_sites_visibility_for_each_viewer(labelled, history):
    """An article read while it was published, then hidden: its reader's page keeps the counts
    but shows neither title nor link; its author, who may still open it, sees both."""
    from community.models import Article

    case = history["hidden_case"]
    article = Article.objects.get(pk=int(case["shown"]))
    Article.objects.filter(pk=article.pk).update(state="draft")
    member = browser_for(case["member"]).get("/analytics/me/data.json?period=all").json()
    rows = next(p for p in member["panels"] if p["id"] == "my-viewed")["table"]["rows"]
    hidden = [r for r in rows if r[0] == {"text": "Article not shown", "href": None}]
    assert [r[1] for r in hidden] == [n for a, n, _ in data.most_viewed(
        history["events"], user=case["member_id"]) if a == case["shown"]]
    assert article.title not in titles_in(member)
    author = browser_for(article.author.username).get(
        f"/analytics/me/data.json?period=7d&user={case['member_id']}")
    assert author.status_code == 403  # another user's page stays theirs
    staff = browser_for("analyst").get(
        f"/analytics/me/data.json?period=all&user={case['member_id']}").json()
    rows = next(p for p in staff["panels"] if p["id"] == "my-viewed")["table"]["rows"]
    assert "Article not shown" in {r[0]["text"] for r in rows}  # staff follow the site's rule


def test_the_demo_label_hook_agrees_with_the_article_page(database_store, history):
    """``Article.visible_to`` (the hook's one query) and ``can_view`` (the article page) agree
    for every article and every kind of viewer, anonymous included."""
    from community.event_types import target_labels
    from community.models import Article
    from django.contrib.auth.models import AnonymousUser

    articles = list(Article.objects.select_related("community"))
    ids = [str(a.pk) for a in articles]
    moderator = get_user_model().objects.get(username=history["moderator"][0])
    viewers = [AnonymousUser(), moderator, get_user_model().objects.get(username="analyst"),
               *get_user_model().objects.filter(articles__isnull=False).distinct()[:5]]
    for viewer in viewers:
        labels = target_labels(viewer, "article", [*ids, "not-a-number", "9" * 40])
        assert set(labels) == {str(a.pk) for a in articles if a.can_view(viewer)}
        hidden = [a for a in articles if not a.can_view(viewer)]
        assert hidden or viewer == moderator


def test_a_page_asks_the_store_each_question_once(database_store, history):
    """The site page's most viewed and reading depth both tally the period's views, its active
    users and new-vs-returning both ask who was active: each reaches the store once."""
    from collections import Counter

    from eventtrail.analytics import pages
    from eventtrail.analytics.params import parse
    from eventtrail.stores import get_store

    store = get_store()
    asked: Counter = Counter()

    class Counting:
        name = store.name

        def __getattr__(self, name):
            method = getattr(store, name)

            def call(*args, **kwargs):
                asked[(name, repr((args, sorted(kwargs.items()))))] += 1
                return method(*args, **kwargs)
            return call

    p = parse({"interval": "day"}, {"interval", "size"}, default_interval="day")
    panels = pages._site_panels(None, Counting(), p)
    assert {panel["id"] for panel in panels} >= {"most-viewed", "reading-depth", "new-returning"}
    assert asked and max(asked.values()) == 1, [k for k, n in asked.items() if n > 1]
    assert sum(1 for name, _ in asked if name == "active_pairs") == 1


def test_a_question_asked_at_once_from_two_panels_reaches_the_store_once():
    """Panels asked in threads (the engine's pages) share a question in flight: the second
    asker waits for the first one's answer, and a failure reaches both."""
    import threading

    from eventtrail.analytics.pages import _Asked

    release = threading.Event()
    calls: list[str] = []

    class Slow:
        name = "elasticsearch"

        def tally(self, key):
            calls.append(key)
            release.wait(5)
            if key == "bad":
                raise ValueError("engine down")
            return [key]

    asked = _Asked(Slow())
    results: list = []

    def ask(key):
        try:
            results.append(asked.tally(key))
        except ValueError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=ask, args=(k,)) for k in ("a", "a", "a", "bad", "bad")]
    for thread in threads:
        thread.start()
    while len(calls) < 2:  # both first askers are inside the store; the others wait on them
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join(5)
    assert sorted(calls) == ["a", "bad"]
    assert sorted(map(str, results)) == sorted(["['a']"] * 3 + ["engine down"] * 2)
