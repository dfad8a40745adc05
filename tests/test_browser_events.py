"""The browser script in real headless Chromium, end to end into the database store."""
import time
from collections import Counter
from pathlib import Path

import pytest
from eventtrail import delivery, url_event
from eventtrail.build import clear_caches
from eventtrail.delivery import Handoff
from eventtrail.delivery.sinks import DatabaseSink
from eventtrail.delivery.spool import MemorySpool
from eventtrail.models import StoredEvent
from eventtrail.registry import registry

pytestmark = [
    pytest.mark.browser,
    pytest.mark.urls("tests.support.browser_urls"),
    pytest.mark.django_db(transaction=True, databases=["default", "events"]),
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def browser_handoff():
    """Events go through a worker of their own into the database store, then are read back."""
    handoff = Handoff(sink=DatabaseSink("events"), spool=MemorySpool(10_000))
    url_event("thing.read", "browser-article", community="community", target=("article", "article"))
    try:
        with delivery.redirected(handoff.put):
            yield handoff
    finally:
        registry.remove("thing.read")
        handoff.stop(timeout=5)
        clear_caches()




def stored_browser_events(handoff, expected, timeout=15.0):
    """The browser events in the store once ``expected`` of them arrived (or the time ran out)."""
    deadline = time.monotonic() + timeout
    while True:
        handoff.flush(2)
        rows = list(StoredEvent.objects.using("events").filter(source="browser")
                    .order_by("timestamp", "id"))
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_scroll_resize_video_and_leaving_are_stored_exactly(live_server, browser_handoff, chromium):
    ARTIFACTS.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1000, "height": 700})
    page.goto(f"{live_server.url}/c/maths/articles/7/")
    page.wait_for_function("document.getElementById('clip').readyState >= 3")
    page.screenshot(path=ARTIFACTS / "browser-article-top.png")

    # Scroll in four steps to the end of the article: each depth once, even when scrolled back.
    height = page.evaluate("document.documentElement.scrollHeight")
    for fraction in (0.3, 0.55, 0.8, 1.0, 0.1, 1.0):
        page.evaluate(f"window.scrollTo(0, {int(height * fraction)})")
        page.wait_for_timeout(120)
    page.screenshot(path=ARTIFACTS / "browser-article-bottom.png")

    # Three quick resizes are debounced into one event with the last size.
    for width, height in ((900, 650), (850, 620), (800, 600)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(60)
    page.wait_for_timeout(800)

    # Play, pause, seek to 2 s while paused, play to the end.
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate("document.getElementById('clip').play()")
    page.wait_for_function("document.getElementById('clip').currentTime > 0.2")
    page.evaluate("document.getElementById('clip').pause()")
    page.evaluate("document.getElementById('clip').currentTime = 2.0")
    page.wait_for_function("!document.getElementById('clip').seeking")
    page.wait_for_timeout(200)
    page.evaluate("document.getElementById('clip').play()")
    page.wait_for_function("document.getElementById('clip').ended", timeout=10_000)
    page.screenshot(path=ARTIFACTS / "browser-video-ended.png")

    # Leave the page: pagehide sends the rest, with the hidden-state event, by beacon.
    page.goto(f"{live_server.url}/elsewhere/")
    rows = stored_browser_events(browser_handoff, expected=15)
    page.close()

    events = [row.document for row in rows]
    flat = [(e["event"]["action"], e.get("eventtrail", {})) for e in events]
    assert Counter(action for action, _ in flat) == Counter({
        "browser.scroll": 4, "browser.resize": 1, "browser.visibility": 1,
        "video.play": 2, "video.pause": 1, "video.seek": 1, "video.progress": 4, "video.ended": 1,
    })
    assert len(events) == 15

    def of(action):
        return [extra for name, extra in flat if name == action]

    assert sorted(e["browser"]["scroll_depth"] for e in of("browser.scroll")) == [25, 50, 75, 100]
    assert of("browser.resize")[0]["browser"]["viewport"] == {"width": 800, "height": 600}
    (hidden,) = of("browser.visibility")
    assert hidden["browser"]["visibility"] == "hidden"
    assert hidden["browser"]["time_on_page"] > 1000
    for extra in of("video.play") + of("video.pause") + of("video.seek") + of("video.ended") \
            + of("video.progress"):
        assert extra["video"]["id"] == "demo-clip"
        assert extra["video"]["duration"] == pytest.approx(3.0, abs=0.05)
    first_play, second_play = sorted(of("video.play"), key=lambda e: e["video"]["position"])
    assert first_play["video"]["position"] < 0.2
    assert second_play["video"]["position"] == pytest.approx(2.0, abs=0.01)
    assert 0.2 <= of("video.pause")[0]["video"]["position"] < 2.0
    assert of("video.seek")[0]["video"]["position"] == pytest.approx(2.0, abs=0.01)
    assert sorted(e["video"]["progress"] for e in of("video.progress")) == [25, 50, 75, 100]
    assert of("video.ended")[0]["video"]["position"] == pytest.approx(3.0, abs=0.05)

    # Identity and context come from the server: the token's page and its URL type.
    for event, row in zip(events, rows, strict=True):
        assert event["eventtrail"]["source"] == "browser"
        assert event["url"]["path"] == "/c/maths/articles/7/"
        assert row.community_slug == "maths"
        assert row.target_type == "article" and row.target_id == "7"
        assert "HeadlessChrome" in event["user_agent"]["original"]
        assert "user" not in event
    # Nothing was refused along the way.
    assert StoredEvent.objects.using("events").exclude(source="browser").filter(
        action__startswith="video.").count() == 0


def test_a_page_with_dnt_honoured_loads_no_script(live_server, browser_handoff, chromium, settings):
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "HONOR_DNT": True}
    context = chromium.new_context(extra_http_headers={"DNT": "1"})
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{live_server.url}/c/maths/articles/7/")
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_timeout(300)
    page.goto(f"{live_server.url}/elsewhere/")
    context.close()
    assert not any("eventtrail" in url for url in requests)
    assert stored_browser_events(browser_handoff, expected=1, timeout=1.0) == []
