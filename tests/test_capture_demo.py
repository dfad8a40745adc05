"""The exact events the demo site produces, through the Django test client and the ORM."""
import pytest
from community.models import Article
from django.contrib.auth import get_user_model
from eventtrail.testing import capture_events

from tests.support.community_factories import build_world, make_article

pytestmark = pytest.mark.django_db(transaction=True)

CANARY = "canary-7f3e9d1b"


@pytest.fixture
def world():
    return build_world()


def only(events, action):
    (event,) = events.of(action)
    return event


def test_login_failed_login_and_logout_on_the_real_pages(client):
    get_user_model().objects.create_user("dora", password="right-password-1")
    with capture_events() as events:
        client.post("/accounts/login/", {"username": "dora", "password": "wrong-password"})
        client.post("/accounts/login/", {"username": "dora", "password": "right-password-1"})
        client.post("/accounts/logout/")
    assert [a for a in events.actions() if a != "page.view"] == [
        "user.login_failed", "user.login", "user.logout"]
    assert only(events, "user.login")["user.name"] == "dora"
    assert only(events, "user.login_failed")["event.outcome"] == "failure"
    assert "right-password-1" not in str(events) and "wrong-password" not in str(events)


def test_each_page_type(client, world):
    article = make_article(world.community, world.author, state="published")
    client.force_login(world.member)
    with capture_events() as events:
        client.get("/")
        client.get("/communities/")
        client.get("/c/gardening/")
        client.get(f"/c/gardening/a/{article.pk}/")
        client.get("/me/articles/")
    assert events.actions() == ["page.view", "page.view", "community.view", "article.view",
                                "page.view"]
    view = only(events, "community.view")
    assert view["eventtrail.community.slug"] == "gardening"
    assert view["eventtrail.community.id"] == str(world.community.pk)
    read = only(events, "article.view")
    assert read["eventtrail.target.type"] == "article"
    assert read["eventtrail.target.id"] == str(article.pk)
    assert read["eventtrail.community.id"] == str(world.community.pk)
    assert read["user.id"] == str(world.member.pk)
    assert read["event.category"] == ["web"] and read["event.type"] == ["access"]


def test_search_and_join(client, world):
    client.force_login(world.outsider)
    with capture_events() as events:
        client.get("/search/?q=tomatoes")
        client.post("/c/gardening/join/")
    assert events.actions() == ["article.search", "community.join"]
    assert only(events, "article.search")["eventtrail.search.query"] == "tomatoes"
    join = only(events, "community.join")
    assert join["user.id"] == str(world.outsider.pk)
    assert join["eventtrail.community.slug"] == "gardening"
    assert join["url.path"] == "/c/gardening/join/"


def test_create_and_edit(client, world):
    client.force_login(world.author)
    with capture_events() as events:
        client.post("/c/gardening/new/", {"title": "Worms", "body": "Compost."})
        article = Article.objects.get(title="Worms")
        client.post(f"/c/gardening/a/{article.pk}/edit/", {"title": "Worms!", "body": "More."})
    created, edited = only(events, "article.create"), only(events, "article.edit")
    assert created["eventtrail.target.state"] == "draft"
    assert created["eventtrail.target.id"] == edited["eventtrail.target.id"] == str(article.pk)
    assert edited["user.id"] == str(world.author.pk)
    assert [a for a in events.actions() if a.startswith("article.")] == [
        "article.create", "article.edit"]


def test_every_transition_over_http_gives_one_event(client, world):
    article = make_article(world.community, world.author)
    path = f"/c/gardening/a/{article.pk}/transition"
    steps = [(world.author, "submit", "draft", "submitted"),
             (world.moderator, "reject", "submitted", "rejected"),
             (world.author, "redraft", "rejected", "draft"),
             (world.author, "submit", "draft", "submitted"),
             (world.moderator, "publish", "submitted", "published"),
             (world.moderator, "archive", "published", "archived")]
    with capture_events() as events:
        for user, action, _, _ in steps:
            client.force_login(user)
            assert client.post(f"{path}/{action}/").status_code in (302, 303)
    changes = events.of("article.state_change")
    assert [(e["eventtrail.target.previous_state"], e["eventtrail.target.state"])
            for e in changes] == [(s[2], s[3]) for s in steps]
    assert [e["user.id"] for e in changes] == [str(s[0].pk) for s in steps]
    assert all(e["url.path"].startswith(path) for e in changes)
    assert {e["eventtrail.source"] for e in changes} == {"signal"}


def test_a_forbidden_transition_records_no_state_change(client, world):
    article = make_article(world.community, world.author, state="submitted")
    client.force_login(world.author)  # authors may not publish their own
    with capture_events() as events:
        assert client.post(f"/c/gardening/a/{article.pk}/transition/publish/").status_code == 403
    assert events.of("article.state_change") == []


def test_orm_changes_outside_http_are_recorded_once(world):
    article = make_article(world.community, world.author)
    with capture_events() as events:
        article.transition("submit", by=world.author)  # the state machine, no request
        fresh = Article.objects.get(pk=article.pk)
        fresh.state = "published"  # a shell or the admin, bypassing it
        fresh.save()
        fresh.title = "Renamed"
        fresh.save()  # no state change: no event
    changes = events.of("article.state_change")
    assert [(e["eventtrail.target.previous_state"], e["eventtrail.target.state"])
            for e in changes] == [("draft", "submitted"), ("submitted", "published")]
    assert changes[0]["user.id"] == str(world.author.pk)
    assert "url.path" not in changes[1] and "user.id" not in changes[1]
    assert changes[1]["eventtrail.community.id"] == str(world.community.pk)


def test_moderators_carry_the_role(client, world):
    client.force_login(world.moderator)
    with capture_events() as events:
        client.get("/c/gardening/")
    assert only(events, "community.view")["user.roles"] == ["moderator"]


def test_canary_secrets_never_appear_in_any_event(client, world):
    get_user_model().objects.create_user("eve", password=f"{CANARY}-pw")
    client.cookies["sessionid_extra"] = CANARY
    with capture_events() as events:
        client.post("/accounts/login/", {"username": "eve", "password": f"{CANARY}-pw"},
                    HTTP_AUTHORIZATION=f"Bearer {CANARY}", HTTP_X_CSRFTOKEN=CANARY,
                    HTTP_COOKIE=f"tracking={CANARY}")
        client.get(f"/c/gardening/?token={CANARY}&password={CANARY}&api_key={CANARY}&page=1",
                   HTTP_REFERER=f"https://user:{CANARY}@example.org/?session={CANARY}",
                   HTTP_AUTHORIZATION=f"Basic {CANARY}")
        client.post("/c/gardening/join/", data=f'{{"password": "{CANARY}"}}',
                    content_type="application/json", HTTP_X_API_KEY=CANARY)
    assert {"user.login", "community.view", "community.join"} <= set(events.actions())
    assert CANARY not in str(events)
    view = only(events, "community.view")
    assert "page=1" in view["url.query"] and "[scrubbed]" in view["url.query"]
    session_key = client.session.session_key
    assert session_key not in str(events)


def test_secret_url_parts_such_as_a_password_reset_token_never_appear(client):
    secret = "cb8zzz-0123456789abcdef" + CANARY
    with capture_events() as events:
        client.get(f"/accounts/reset/MQ/{secret}/",
                   HTTP_REFERER=f"http://testserver/accounts/reset/MQ/{secret}/")
    assert events, "the reset page was recorded"
    assert CANARY not in str(events)
    event = events.flat()[0]
    assert event["url.path"] == "/accounts/reset/MQ/[scrubbed]/"
    assert event["http.request.referrer"] == "http://testserver/accounts/reset/MQ/[scrubbed]/"
