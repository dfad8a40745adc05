"""The browser collector and its template tag, through the Django test client."""
import io
import json
import re

import pytest
from django.contrib.auth.models import User
from django.core import signing
from django.core.cache import cache
from django.test import RequestFactory, override_settings
from eventtrail import url_event
from eventtrail.build import clear_caches
from eventtrail.collect import collect
from eventtrail.privacy import session_hash
from eventtrail.registry import registry
from eventtrail.stats import counters
from eventtrail.testing import capture_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.urls("tests.support.browser_urls"), pytest.mark.django_db]

COLLECT = "/eventtrail/collect/"
ARTICLE = "/c/maths/articles/7/"
ORIGIN = "http://testserver"
CONFIG_RE = re.compile(r'<script id="eventtrail-config" type="application/json">(.*?)</script>', re.S)


@pytest.fixture(autouse=True)
def _fresh():
    """A clean throttle and counters; page views of the test pages go nowhere."""
    cache.clear()
    counters.reset()
    with capture_events():
        yield
    cache.clear()
    # Users built here are cached by id for a minute; other test files reuse those ids.
    clear_caches()


@pytest.fixture
def article_type():
    url_event("thing.read", "browser-article", community="community", target=("article", "article"))
    yield
    registry.remove("thing.read")


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", password="correct horse")


def page_config(client, path=ARTICLE, **headers):
    response = client.get(path, **headers)
    assert response.status_code == 200
    match = CONFIG_RE.search(response.content.decode())
    return json.loads(match.group(1)) if match else None


def token_for(client, path=ARTICLE):
    return page_config(client, path)["token"]


def post(client, body, origin=ORIGIN, **headers):
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    if origin is not None:
        headers["HTTP_ORIGIN"] = origin
    return client.post(COLLECT, data=raw, content_type="text/plain;charset=UTF-8", **headers)


def scroll(depth=25, **extra):
    return {"type": "browser.scroll", "fields": {"eventtrail.browser.scroll_depth": depth}, **extra}


def play(video="intro", position=1.5, duration=3.0):
    return {"type": "video.play", "fields": {"eventtrail.video.id": video,
                                             "eventtrail.video.position": position,
                                             "eventtrail.video.duration": duration}}


# --- the happy path ----------------------------------------------------------------------------


def test_a_valid_batch_is_accepted_with_server_side_identity(client, alice, article_type):
    client.force_login(alice)
    token = token_for(client)
    with capture_events() as events:
        response = post(client, {"token": token, "events": [
            scroll(25, age=1500), play(),
            {"type": "browser.resize", "fields": {"eventtrail.browser.viewport.width": 800,
                                                  "eventtrail.browser.viewport.height": 600}},
            {"type": "browser.visibility", "fields": {"eventtrail.browser.visibility": "hidden",
                                                      "eventtrail.browser.time_on_page": 4200}},
        ]}, HTTP_USER_AGENT="Chromium/1", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 202
    assert response.json() == {"accepted": 4}
    assert events.actions() == ["browser.scroll", "video.play", "browser.resize",
                                "browser.visibility"]
    first, second = events.flat()[:2]
    for event in events.flat():
        assert event["eventtrail.source"] == "browser"
        assert event["url.path"] == ARTICLE
        assert event["user.name"] == "alice" and event["user.id"] == str(alice.pk)
        assert event["eventtrail.session.hash"] == session_hash(client.session.session_key)
        assert event["eventtrail.community.slug"] == "maths"
        assert event["eventtrail.target.type"] == "article"
        assert event["eventtrail.target.id"] == "7"
        assert event["user_agent.original"] == "Chromium/1"
        assert event["source.ip"] == "203.0.113.7"
    assert first["eventtrail.browser.scroll_depth"] == 25
    assert second["eventtrail.video.id"] == "intro"
    assert second["eventtrail.video.position"] == 1.5
    assert first["@timestamp"] < second["@timestamp"]  # an age of 1.5 s moves it back
    assert counters.values["collect.accepted"] == 4


def test_without_a_url_type_the_page_path_is_still_the_token_s(client):
    token = token_for(client, "/plain/")
    with capture_events() as events:
        assert post(client, {"token": token, "events": [scroll(50)]}).status_code == 202
    event = events.flat()[0]
    assert event["url.path"] == "/plain/"
    assert "eventtrail.community.slug" not in event and "user.id" not in event


def test_a_referer_of_this_host_stands_in_for_a_missing_origin(client):
    token = token_for(client)
    with capture_events() as events:
        response = post(client, {"token": token, "events": [scroll()]}, origin=None,
                        HTTP_REFERER="http://testserver/c/maths/articles/7/")
    assert response.status_code == 202 and len(events) == 1


# --- a mixed batch keeps what is valid ----------------------------------------------------------


def test_a_mixed_batch_keeps_the_valid_events_and_lists_the_others(client, alice):
    client.force_login(alice)
    token = token_for(client)
    batch = [
        scroll(25),
        {"type": "browser.keylogger", "fields": {}},
        scroll(33),
        {"type": "browser.scroll", "fields": {"eventtrail.browser.scroll_depth": "25"}},
        {"type": "browser.scroll", "fields": {"eventtrail.browser.scroll_depth": True}},
        {"type": "browser.scroll", "fields": {"eventtrail.browser.scroll_depth": 25,
                                              "user.id": "1"}},
        {"type": "browser.scroll", "fields": {"eventtrail.browser.scroll_depth": 25},
         "user": {"id": 1, "name": "root"}},
        {"type": "browser.scroll", "fields": {}},
        "browser.scroll",
        {"type": "browser.scroll", "fields": [25]},
        play(position=-1),
        play(video="x" * 300),
        play(video="<script>"),
        scroll(75, age=10**12),
        play(),
    ]
    with capture_events() as events:
        response = post(client, {"token": token, "events": batch})
    assert response.status_code == 422
    assert response.json() == {"accepted": 2, "errors": [
        {"index": 1, "reason": "unknown_type"},
        {"index": 2, "reason": "out_of_range"},
        {"index": 3, "reason": "wrong_type"},
        {"index": 4, "reason": "wrong_type"},
        {"index": 5, "reason": "unknown_field"},
        {"index": 6, "reason": "unknown_key"},
        {"index": 7, "reason": "missing_field"},
        {"index": 8, "reason": "not_an_object"},
        {"index": 9, "reason": "wrong_type"},
        {"index": 10, "reason": "out_of_range"},
        {"index": 11, "reason": "out_of_range"},
        {"index": 12, "reason": "out_of_range"},
        {"index": 13, "reason": "out_of_range"},
    ]}
    assert events.actions() == ["browser.scroll", "video.play"]
    assert all(e["user.name"] == "alice" for e in events.flat())
    # Refused before the hand-off (and told to the browser): counted by the collector only.
    assert counters.values["dropped.invalid"] == 0
    assert sum(v for k, v in counters.values.items() if k.startswith("collect.invalid.")) == 13
    assert counters.values["collect.invalid.out_of_range"] == 5
    assert counters.values["collect.invalid.wrong_type"] == 3
    assert counters.values["collect.invalid.unknown_field"] == 1


def test_a_batch_with_no_valid_event_is_422_and_keeps_nothing(client):
    token = token_for(client)
    with capture_events() as events:
        response = post(client, {"token": token, "events": [scroll(10)]})
    assert response.status_code == 422
    assert response.json()["accepted"] == 0
    assert events == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**30, -5, 1e308, [], {}, None])
def test_numbers_are_range_checked_and_typed(client, value):
    token = token_for(client)
    body = json.dumps({"token": token, "events": [
        {"type": "browser.resize", "fields": {"eventtrail.browser.viewport.width": value,
                                              "eventtrail.browser.viewport.height": 600}}]})
    with capture_events() as events:
        response = post(client, body)
    assert response.status_code in {400, 422}  # NaN and Infinity are not JSON at all
    assert events == []


# --- hostile requests are refused whole ---------------------------------------------------------


def test_a_forged_user_at_the_top_of_the_body_is_refused(client, alice):
    token = token_for(client)
    with capture_events() as events:
        response = post(client, {"token": token, "user": {"id": alice.pk}, "events": [scroll()]})
    assert response.status_code == 400 and response.json() == {"error": "unknown_key"}
    assert events == []


def test_a_huge_body_is_refused_by_its_declared_length(client):
    token = token_for(client)
    body = json.dumps({"token": token, "events": [scroll()] * 5000})
    with capture_events() as events:
        response = post(client, body)
    assert response.status_code == 413 and response.json() == {"error": "too_large"}
    assert events == []


class CountingStream(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_the_stream_is_never_read_past_the_cap():
    factory = RequestFactory()
    declared = factory.post(COLLECT, data=b"x" * 10_000_000, content_type="text/plain",
                            HTTP_ORIGIN=ORIGIN)
    declared._stream = stream = CountingStream(b"x" * 10_000_000)
    assert collect(declared).status_code == 413
    assert stream.bytes_read == 0
    undeclared = factory.post(COLLECT, data=b"", content_type="text/plain", HTTP_ORIGIN=ORIGIN)
    undeclared.META.pop("CONTENT_LENGTH", None)
    undeclared._stream = stream = CountingStream(b"[" * 10_000_000)
    assert collect(undeclared).status_code == 413
    assert stream.bytes_read == 32_769


def test_deeply_nested_json_is_a_400(client):
    token = token_for(client)
    depth = 15_000
    body = '{"token": ' + json.dumps(token) + ', "events": ' + "[" * depth + "]" * depth + "}"
    assert post(client, body).status_code == 400
    nested = {"type": "browser.scroll", "fields": {"eventtrail.browser.scroll_depth": 25}}
    for _ in range(200):
        nested = {"fields": nested}
    response = post(client, {"token": token, "events": [nested]})
    assert response.status_code == 422


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe", b"[]", b'"events"', b"null",
                                  b'{"token": 1}', b'{"events": []}', b"NaN", b"1e999999"])
def test_malformed_bodies_are_4xx(client, body):
    response = post(client, body)
    assert 400 <= response.status_code < 500


def test_too_many_events_in_one_batch_is_413(client):
    token = token_for(client)
    with override_settings(EVENTTRAIL={"COLLECT_MAX_EVENTS": 3}), capture_events() as events:
        response = post(client, {"token": token, "events": [scroll()] * 4})
    assert response.status_code == 413 and response.json() == {"error": "too_many_events"}
    assert events == []


@pytest.mark.parametrize("origin", ["https://evil.example", "http://testserver.evil.example",
                                    "null", ""])
def test_a_wrong_or_missing_origin_is_403(client, origin):
    token = token_for(client)
    with capture_events() as events:
        response = post(client, {"token": token, "events": [scroll()]}, origin=origin)
    assert response.status_code == 403
    assert response.json()["error"] in {"wrong_origin", "no_origin"}
    assert events == []


def test_a_foreign_referer_is_403(client):
    token = token_for(client)
    response = post(client, {"token": token, "events": [scroll()]}, origin=None,
                    HTTP_REFERER="https://evil.example/page")
    assert response.status_code == 403


def test_a_missing_tampered_or_foreign_token_is_403(client, alice):
    token = token_for(client)
    for bad, reason in [(None, "missing_token"), ("", "missing_token"), (42, "missing_token"),
                        (token[:-2] + "xx", "bad_token"),
                        (signing.dumps({"u": "", "k": {}, "p": "/", "s": ""}), "bad_token")]:
        response = post(client, {"token": bad, "events": [scroll()]})
        assert response.status_code == 403, bad
        assert response.json() == {"error": reason}
    # A token made for an anonymous page does not serve a logged-in session, and vice versa.
    client.force_login(alice)
    response = post(client, {"token": token, "events": [scroll()]})
    assert response.status_code == 403 and response.json() == {"error": "foreign_token"}
    other = client.__class__()
    other.force_login(User.objects.create_user("mallory"))
    mallory_token = token_for(other)
    with capture_events() as events:
        response = post(client, {"token": mallory_token, "events": [scroll()]})
    assert response.status_code == 403 and events == []


def test_an_expired_token_is_403(client):
    token = token_for(client)
    with override_settings(EVENTTRAIL={"COLLECT_TOKEN_MAX_AGE": -1}):
        response = post(client, {"token": token, "events": [scroll()]})
    assert response.status_code == 403 and response.json() == {"error": "expired_token"}


def test_only_post_is_allowed(client):
    response = client.get(COLLECT)
    assert response.status_code == 405 and response["Allow"] == "POST"


def test_throttling_per_session_and_per_ip(client, alice):
    token = token_for(client)
    rules = {"COLLECT_THROTTLE": {"session": "3/min", "ip": "5/min"}}
    with override_settings(EVENTTRAIL=rules):
        codes = [post(client, {"token": token, "events": [scroll()]}).status_code
                 for _ in range(4)]
        assert codes == [202, 202, 202, 429]
        assert counters.values["collect.rejected.throttled_session"] == 1
        # Another session from the same IP has its own session budget but shares the IP's.
        client.force_login(alice)
        token = token_for(client)
        codes = [post(client, {"token": token, "events": [scroll()]}).status_code
                 for _ in range(3)]
        assert codes == [202, 202, 429]
        assert counters.values["collect.rejected.throttled_ip"] == 1
        # Anonymous pages share no session: their budget is their IP's.
        anonymous = client.__class__()
        token = token_for(anonymous)
        response = post(anonymous, {"token": token, "events": [scroll()]},
                        REMOTE_ADDR="192.0.2.50")
        assert response.status_code == 202


# --- privacy: DNT, GPC, opt-out ------------------------------------------------------------------


def test_dnt_and_gpc_are_honoured_by_the_tag_and_the_endpoint(client):
    token = token_for(client)
    with override_settings(EVENTTRAIL={"HONOR_DNT": True, "HONOR_GPC": True}):
        assert page_config(client, HTTP_DNT="1") is None
        assert page_config(client, HTTP_SEC_GPC="1") is None
        assert page_config(client)["dnt"] is True
        with capture_events() as events:
            assert post(client, {"token": token, "events": [scroll()]},
                        HTTP_DNT="1").status_code == 204
            assert post(client, {"token": token, "events": [scroll()]},
                        HTTP_SEC_GPC="1").status_code == 204
        assert events == []
    with capture_events() as events:  # not honoured: recorded
        assert post(client, {"token": token, "events": [scroll()]}, HTTP_DNT="1").status_code == 202
    assert len(events) == 1


def opted_out(user):
    return user.username == "alice"


def test_opted_out_users_get_no_script_and_their_events_are_dropped(client, alice):
    client.force_login(alice)
    token = token_for(client)
    with override_settings(EVENTTRAIL={"OPT_OUT": "tests.test_collect.opted_out"}):
        assert page_config(client) is None
        with capture_events() as events:
            assert post(client, {"token": token, "events": [scroll()]}).status_code == 202
    assert events == []


def test_disabled_means_no_script_and_nothing_kept(client):
    token = token_for(client)
    with override_settings(EVENTTRAIL={"ENABLED": False}), capture_events() as events:
        assert page_config(client) is None
        assert post(client, {"token": token, "events": [scroll()]}).status_code == 204
    assert events == []


# --- the template tag ----------------------------------------------------------------------------


def test_the_tag_renders_the_config_and_the_deferred_script(client):
    response = client.get(ARTICLE)
    html = response.content.decode()
    assert '<script src="/static/eventtrail/eventtrail.js" defer></script>' in html
    config = json.loads(CONFIG_RE.search(html).group(1))
    assert config["endpoint"] == COLLECT
    assert config["types"] == sorted(registry.browser)
    assert config["types"] == ["browser.resize", "browser.scroll", "browser.visibility",
                               "video.ended", "video.pause", "video.play", "video.progress",
                               "video.seek"]
    assert config["maxEvents"] == 50
    payload = signing.loads(config["token"], salt="eventtrail.collect")
    assert payload == {"u": "browser-article", "k": {"community": "maths", "article": "7"},
                       "p": ARTICLE, "s": ""}


# --- fuzzing: no input gives a 5xx ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from(sorted(registry.browser)),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12) | st.sampled_from(
        ["type", "fields", "age", "token", "events", "user", "eventtrail.video.id",
         "eventtrail.browser.scroll_depth", "eventtrail.video.position"]), children, max_size=5),
    max_leaves=30,
)

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(events=json_values)
def test_fuzzed_events_never_give_a_5xx(client, events):
    cache.clear()
    token = token_for(client)
    with capture_events():
        response = post(client, {"token": token, "events": events})
    assert 200 <= response.status_code < 500
    assert counters.values["internal_error"] == 0


@FUZZ
@given(body=json_values | st.binary(max_size=200).map(lambda b: b))
def test_fuzzed_bodies_never_give_a_5xx(client, body):
    cache.clear()
    with capture_events():
        response = post(client, body if isinstance(body, bytes) else json.dumps(body))
    assert 200 <= response.status_code < 500
    assert counters.values["internal_error"] == 0
