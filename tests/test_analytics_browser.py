"""The analytics pages in real headless Chromium: charts drawn, live updates, 403s, phone width."""
from __future__ import annotations

import random
import time
from pathlib import Path

import eventtrail
import pytest
from community.activity import Generator, default_until, load_site
from community.models import Community, Membership
from community.seed import seed
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client
from eventtrail.build import prepare
from eventtrail.delivery.sinks import DatabaseSink

from tests.support import analytics_data as data

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "events"]),
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def site(settings):
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "STORE": "database",
                           "ANALYTICS_POLL_SECONDS": 1,
                           "MODERATED_COMMUNITIES": "community.event_types.moderated_communities",
                           "TARGET_LABELS": "community.event_types.target_labels"}
    with eventtrail.suppressed():
        seed()
    until = default_until()
    generator = Generator(load_site(random.Random(1)), days=30, events=3000, seed=1, until=until)
    DatabaseSink("events").send([prepare(d)[1] for d in generator.drafts()])
    get_user_model().objects.create(username="analyst", is_staff=True)
    moderator = Membership.objects.filter(role=Membership.Role.MODERATOR).order_by("pk").first()
    author = get_user_model().objects.filter(articles__isnull=False).order_by("pk").first()
    return {"moderator": moderator.user, "slug": moderator.community.slug, "author": author}




def session_for(chromium, live_server, user, viewport=DESKTOP, javascript=True):
    client = Client()
    # The live server may still be answering the last page's poll: with SQLite's shared cache a
    # table another connection reads is "locked" at once (no busy wait), so try again briefly.
    for attempt in range(20):
        try:
            client.force_login(user)
            break
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 19:
                raise
            time.sleep(0.1)
    context = chromium.new_context(viewport=viewport, java_script_enabled=javascript)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                          "url": live_server.url}])
    return context


def charts_drawn(page) -> dict[str, int]:
    page.wait_for_function("Number(document.querySelector('.et-analytics').dataset.charts) > 0")
    return page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('.et-has-chart')].map(el => [el.dataset.panel,
          el.querySelector('canvas').width > 0 ? Number(el.dataset.points || 0) : -1]))""")


def fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("who,path,name", [
    ("author", "/analytics/me/", "my-activity"),
    ("moderator", "/analytics/c/{slug}/", "community"),
    ("analyst", "/analytics/site/?period=90d", "site"),
])
def test_each_page_draws_its_charts_with_data(live_server, site, chromium, who, path, name):
    ARTIFACTS.mkdir(exist_ok=True)
    user = get_user_model().objects.get(username="analyst") if who == "analyst" else site[who]
    url = live_server.url + path.format(slug=site["slug"])
    for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        context = session_for(chromium, live_server, user, viewport)
        page = context.new_page()
        response = page.goto(url)
        assert response.status == 200
        drawn = charts_drawn(page)
        assert drawn and all(points >= 0 for points in drawn.values()), drawn
        assert sum(1 for points in drawn.values() if points > 0) >= len(drawn) - 1, drawn
        assert fits_the_screen(page)
        page.screenshot(path=ARTIFACTS / f"analytics-{name}{suffix}.png", full_page=True)
        context.close()


def test_tooltips_legends_and_the_period_picker(live_server, site, chromium):
    context = session_for(chromium, live_server, get_user_model().objects.get(username="analyst"))
    page = context.new_page()
    page.goto(f"{live_server.url}/analytics/site/")
    charts_drawn(page)
    canvas = page.locator("#panel-active canvas")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    page.wait_for_function("""() => document.querySelector('.et-analytics').etCharts
        .get('active').tooltip.getActiveElements().length > 0""")
    legend = page.evaluate("""() => document.querySelector('.et-analytics').etCharts
        .get('active').legend.legendItems.map(i => i.text)""")
    assert legend == ["active users", "events"]
    before = page.locator("#panel-active tbody tr").count()
    page.select_option(".et-period select", "7d")
    page.wait_for_function("document.querySelector('.et-analytics').dataset.version === '1'")
    assert "period=7d" in page.url
    assert page.locator("#panel-active tbody tr").count() == 7 < before
    context.close()


def test_the_live_page_updates_when_events_arrive(live_server, site, chromium):
    ARTIFACTS.mkdir(exist_ok=True)
    user = site["author"]
    context = session_for(chromium, live_server, user)
    page = context.new_page()
    page.goto(f"{live_server.url}/analytics/me/")
    charts_drawn(page)
    page.wait_for_function("document.querySelector('[data-ago]').textContent.includes('s ago')")
    before = int(page.locator("[data-events]").text_content())
    views_before = page.evaluate("""() => document.querySelector('.et-analytics').etCharts
        .get('my-actions').data.datasets.map(d => d.data.reduce((a, b) => a + b, 0))
        .reduce((a, b) => a + b, 0)""")
    # Three views now, by this user, through the same sink the site writes with.
    now = default_until().replace(hour=0)  # today, so they fall in the period
    import datetime as dt
    moment = dt.datetime.now(dt.UTC)
    DatabaseSink("events").send([prepare(data._view(moment - dt.timedelta(seconds=i),
                                                    str(user.pk), data.STEADY))[1]
                                 for i in range(3)])
    assert now <= moment
    page.wait_for_function(f"document.querySelector('[data-events]').textContent === '{before + 3}'",
                           timeout=15_000)
    views_after = page.evaluate("""() => document.querySelector('.et-analytics').etCharts
        .get('my-actions').data.datasets.map(d => d.data.reduce((a, b) => a + b, 0))
        .reduce((a, b) => a + b, 0)""")
    assert views_after == views_before + 3
    assert page.locator("[data-newest]").get_attribute("datetime")[:16] == \
        moment.isoformat()[:16]
    page.screenshot(path=ARTIFACTS / "analytics-live-updated.png", full_page=True)
    context.close()


def test_other_users_and_communities_are_403(live_server, site, chromium):
    author = site["author"]
    context = session_for(chromium, live_server, author)
    page = context.new_page()
    other = get_user_model().objects.exclude(pk=author.pk).exclude(username="analyst").first()
    assert page.goto(f"{live_server.url}/analytics/me/?user={other.pk}").status == 403
    moderated = set(Membership.objects.filter(user=author, role=Membership.Role.MODERATOR)
                    .values_list("community__slug", flat=True))
    foreign = Community.objects.exclude(slug__in=moderated).first()
    assert page.goto(f"{live_server.url}/analytics/c/{foreign.slug}/").status == 403
    assert page.goto(f"{live_server.url}/analytics/site/").status == 403
    page.screenshot(path=ARTIFACTS / "analytics-403.png")
    context.close()


def test_numbers_are_readable_without_javascript(live_server, site, chromium):
    context = session_for(chromium, live_server, get_user_model().objects.get(username="analyst"),
                          PHONE, javascript=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/analytics/site/")
    cells = page.locator("#panel-dau tbody td").all_text_contents()
    assert len(cells) == 3 and all(c.strip().isdigit() for c in cells)
    assert page.locator("#panel-active table").is_visible()
    assert fits_the_screen(page)
    page.screenshot(path=ARTIFACTS / "analytics-site-no-js-phone.png", full_page=True)
    context.close()


def test_active_users_and_events_each_have_their_own_scale(live_server, site, chromium):
    """Tens of users beside hundreds of events a day: on one axis the users would lie on the floor.
    Each line has its own axis, titled with it, whose top is near that line's peak, and each
    line's peak is drawn in the upper part of the chart."""
    ARTIFACTS.mkdir(exist_ok=True)
    context = session_for(chromium, live_server, get_user_model().objects.get(username="analyst"))
    page = context.new_page()
    page.goto(f"{live_server.url}/analytics/site/?period=30d")
    charts_drawn(page)
    chart = page.evaluate("""() => {
        const chart = document.querySelector('.et-analytics').etCharts.get('active');
        const area = chart.chartArea;
        return chart.data.datasets.map((set, i) => {
            const scale = chart.scales[set.yAxisID];
            const peak = Math.max(...set.data);
            const y = chart.getDatasetMeta(i).data[set.data.indexOf(peak)].y;
            return {label: set.label, axis: set.yAxisID, position: scale.position,
                    title: scale.options.title.text, max: scale.max, peak,
                    height: (area.bottom - y) / (area.bottom - area.top)};
        });
    }""")
    users, events = chart
    assert (users["label"], users["axis"], users["position"]) == ("active users", "y", "left")
    assert (events["label"], events["axis"], events["position"]) == ("events", "y1", "right")
    assert events["peak"] > 5 * users["peak"] > 0  # on one axis the users would stay under 20%
    for line in chart:
        assert line["title"] == line["label"]
        assert line["peak"] <= line["max"] <= 2 * line["peak"], line
        assert line["height"] > 0.5, line  # drawn in the upper half, not flat on the floor
    page.locator("#panel-active").screenshot(path=ARTIFACTS / "analytics-active-users.png")
    context.close()
