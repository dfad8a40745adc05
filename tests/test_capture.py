"""The middleware and capture path, on a tiny URLconf of its own."""
import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from eventtrail import url_event
from eventtrail.registry import registry
from eventtrail.stats import counters
from eventtrail.testing import capture_events

from tests.support.capture_urls import Boom

pytestmark = [pytest.mark.urls("tests.support.capture_urls"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def thing_types():
    url_event("thing.view", "thing-detail", community="community", target=("thing", "thing"),
              context=lambda kw: {"eventtrail.community.id": f"id-of-{kw['community']}"})
    url_event("thing.search", "thing-search", search_param="q", type="info")
    yield
    registry.remove("thing.view")
    registry.remove("thing.search")


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", password="correct horse", is_staff=True)


def test_a_keyed_url_gives_exactly_one_event_with_its_fields(client, thing_types):
    with capture_events() as events:
        response = client.get("/things/maths/42/?page=2", HTTP_USER_AGENT="Firefox/1",
                              HTTP_REFERER="https://example.org/from?q=1",
                              REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    assert events.actions() == ["thing.view"]
    event = events.flat()[0]
    assert event["event.kind"] == "event"
    assert event["event.outcome"] == "success"
    assert event["url.path"] == "/things/maths/42/"
    assert event["url.query"] == "page=2"
    assert event["http.request.method"] == "GET"
    assert event["http.response.status_code"] == 200
    assert event["http.request.referrer"] == "https://example.org/from?q=1"
    assert event["user_agent.original"] == "Firefox/1"
    assert event["source.ip"] == "203.0.113.9"
    assert event["eventtrail.community.slug"] == "maths"
    assert event["eventtrail.community.id"] == "id-of-maths"
    assert event["eventtrail.target.type"] == "thing"
    assert event["eventtrail.target.id"] == "42"
    assert event["eventtrail.source"] == "server"
    assert event["event.duration"] > 0
    assert len(event["event.id"]) == 36 and event["event.id"][14] == "7"
    assert event["http.request.id"]
    assert "user.id" not in event


def test_search_terms_are_recorded(client, thing_types):
    with capture_events() as events:
        client.get("/find/?q=graph+theory")
    assert events.of("thing.search")[0]["eventtrail.search.query"] == "graph theory"


def test_unkeyed_get_is_a_page_view_and_can_be_switched_off(client):
    with capture_events() as events:
        client.get("/ok/")
        client.post("/echo/", data="x", content_type="text/plain")
    assert events.actions() == ["page.view"]
    with override_settings(EVENTTRAIL={"PAGE_VIEW": False}), capture_events() as events:
        client.get("/ok/")
    assert events == []


def test_excluded_paths_produce_no_event(client):
    with capture_events() as events:
        client.get("/static/app.css")
        client.get("/health/")
    assert events == []
    with override_settings(EVENTTRAIL={"EXCLUDE_PATHS": [r"^/ok/"]}), capture_events() as events:
        client.get("/ok/")
        client.get("/health/")
    assert events.actions() == ["page.view"]


def test_sampling_zero_keeps_nothing_and_one_keeps_all(client):
    with override_settings(EVENTTRAIL={"SAMPLING": {"page.view": 0.0}}), capture_events() as ev:
        for _ in range(5):
            client.get("/ok/")
    assert ev == []
    with override_settings(EVENTTRAIL={"SAMPLING": {"page.view": 1.0}}), capture_events() as ev:
        for _ in range(5):
            client.get("/ok/")
    assert len(ev) == 5


def test_logged_in_user_is_recorded_even_when_the_view_never_touched_user(client, alice):
    client.force_login(alice)
    with capture_events() as events:
        client.get("/ok/")
        client.get("/whoami/")
    first, second = events.flat()
    for event in (first, second):
        assert event["user.id"] == str(alice.pk)
        assert event["user.name"] == "alice"
        assert event["user.roles"] == ["staff"]
        assert len(event["eventtrail.session.hash"]) == 32
    assert client.session.session_key not in str(events)


def test_login_failed_login_and_logout(client, alice):
    with capture_events() as events:
        client.post("/login/", {"username": "alice", "password": "wrong"})
        client.post("/login/", {"username": "alice", "password": "correct horse"})
        client.post("/logout/")
    assert events.actions() == ["user.login_failed", "user.login", "user.logout"]
    failed, login, logout = events.flat()
    assert failed["event.outcome"] == "failure" and failed["user.name"] == "alice"
    assert "user.id" not in failed
    assert failed["event.category"] == ["authentication"]
    assert login["user.id"] == str(alice.pk) and login["event.outcome"] == "success"
    assert login["url.path"] == "/login/" and login["eventtrail.source"] == "signal"
    assert logout["user.id"] == str(alice.pk)
    assert "correct horse" not in str(events) and "wrong" not in str(events)


def test_a_raising_view_yields_one_failure_event_and_the_same_exception(client):
    with capture_events() as events, pytest.raises(Boom, match="the view failed"):
        client.get("/boom/")
    assert events.actions() == ["page.view"]
    event = events.flat()[0]
    assert event["event.outcome"] == "failure"
    assert event["http.response.status_code"] == 500


def test_status_gives_the_outcome(client):
    with capture_events() as events:
        client.get("/nowhere/")
    assert events.flat()[0]["http.response.status_code"] == 404
    assert events.flat()[0]["event.outcome"] == "failure"


@override_settings(EVENTTRAIL={"TRUSTED_PROXIES": ["10.0.0.0/8"]})
def test_forwarded_for_is_believed_only_through_trusted_proxies(client):
    with capture_events() as events:
        client.get("/ok/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.9.9.9")
        client.get("/ok/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert [e["source.ip"] for e in events.flat()] == ["198.51.100.7", "192.0.2.1"]


def test_hostile_requests_never_make_the_middleware_raise(client):
    before = counters.snapshot()["counters"]["internal_error"]
    with capture_events() as events:
        assert client.get("/ok/%ff%fe/").status_code == 404
        assert client.get("/ok/", HTTP_USER_AGENT="A" * 65536,
                          HTTP_X_CUSTOM="B" * 65536).status_code == 200
        assert client.generic("BREW", "/ok/").status_code == 200
        response = client.get("/ok/")
        assert response.status_code == 200
    assert counters.snapshot()["counters"]["internal_error"] == before
    assert len(events) == 3  # BREW is not a GET, so not a page view
    long_ua = events.flat()[1]["user_agent.original"]
    assert len(long_ua) == 2048
    assert "user_agent.original" not in events.flat()[2]


def test_an_internal_error_is_counted_and_swallowed(client, monkeypatch):
    from eventtrail import capture

    def broken(*args, **kwargs):
        raise RuntimeError("capture bug")

    monkeypatch.setattr(capture, "classify", broken)
    before = counters.snapshot()["counters"]["internal_error"]
    with capture_events() as events:
        assert client.get("/ok/").content == b"ok"
    assert events == []
    assert counters.snapshot()["counters"]["internal_error"] == before + 1


def test_disabled_hands_straight_back(client, alice):
    with override_settings(EVENTTRAIL={"ENABLED": False}), capture_events() as events:
        client.get("/ok/")
        client.post("/login/", {"username": "alice", "password": "correct horse"})
    assert events == []


def test_async_requests_are_recorded(async_client):
    from asgiref.sync import async_to_sync

    with capture_events() as events:
        response = async_to_sync(async_client.get)("/ok/")
    assert response.status_code == 200
    assert events.actions() == ["page.view"]
