"""Every page of the demo site: what it shows, and the 403s and 404s it answers with."""

from pathlib import Path

import pytest
from community.models import Article, Membership
from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.support.community_factories import build_world, make_article, make_community

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return build_world()


def url(name, **kwargs):
    return reverse(name, kwargs=kwargs)


def article_url(name, article, **extra):
    return url(name, community=article.community.slug, article=article.pk, **extra)


def text(response):
    return response.content.decode()


def as_user(client, user):
    if user is not None:
        client.force_login(user)
    return client


# --- the URL contract other code keys events on -------------------------------------------


def test_url_names_and_kwargs():
    assert url("home") == "/"
    assert url("community-list") == "/communities/"
    assert url("community-detail", community="gardening") == "/c/gardening/"
    assert url("community-join", community="gardening") == "/c/gardening/join/"
    assert url("article-create", community="gardening") == "/c/gardening/new/"
    assert url("article-detail", community="gardening", article=7) == "/c/gardening/a/7/"
    assert url("article-edit", community="gardening", article=7) == "/c/gardening/a/7/edit/"
    assert (
        url("article-transition", community="gardening", article=7, action="publish")
        == "/c/gardening/a/7/transition/publish/"
    )
    assert url("article-search") == "/search/"
    assert url("my-articles") == "/me/articles/"
    assert url("login") == "/accounts/login/"
    assert url("logout") == "/accounts/logout/"


# --- home and communities -------------------------------------------------------------------


def test_home_lists_communities_and_recent_published_articles(client, world):
    make_article(world.community, world.author, "published", title="Rooftop beehives")
    make_article(world.community, world.author, "draft", title="Secret draft")
    response = client.get(url("home"))
    assert response.status_code == 200
    page = text(response)
    assert "Urban Gardening" in page and "Home Espresso" in page
    assert "Rooftop beehives" in page
    assert "Secret draft" not in page
    assert 'href="/accounts/login/' in page


def test_home_shows_my_communities_and_the_logout_button(client, world):
    response = as_user(client, world.author).get(url("home"))
    page = text(response)
    assert "Your communities" in page
    assert 'action="/accounts/logout/"' in page and 'method="post"' in page
    assert 'href="/me/articles/"' in page


def test_community_list(client, world):
    make_article(world.community, world.author, "published")
    response = client.get(url("community-list"))
    assert response.status_code == 200
    page = text(response)
    assert "Urban Gardening" in page and "Growing things together." in page
    assert "3 members" in page and "1 published article" in page


def test_community_detail_shows_only_published_articles(client, world):
    make_article(world.community, world.author, "published", title="Seed swaps")
    make_article(world.community, world.author, "archived", title="Old news")
    make_article(world.community, world.author, "submitted", title="Waiting one")
    make_article(world.other_community, world.other_moderator, "published", title="Elsewhere")
    response = client.get(url("community-detail", community="gardening"))
    assert response.status_code == 200
    page = text(response)
    assert "Seed swaps" in page
    assert "Old news" not in page and "Waiting one" not in page and "Elsewhere" not in page
    assert "moderated by moderator" in page
    assert "Log in to join" in page


def test_community_detail_offers_join_to_non_members_only(client, world):
    join = 'action="/c/gardening/join/"'
    assert join in text(
        as_user(client, world.outsider).get(url("community-detail", community="gardening"))
    )
    page = text(as_user(client, world.member).get(url("community-detail", community="gardening")))
    assert join not in page
    assert "You are a member" in page
    assert 'href="/c/gardening/new/"' in page


def test_moderators_see_what_waits_for_review(client, world):
    make_article(world.community, world.author, "submitted", title="Please review me")
    detail = url("community-detail", community="gardening")
    page = text(as_user(client, world.moderator).get(detail))
    assert "Waiting for review" in page and "Please review me" in page
    client.logout()
    page = text(as_user(client, world.member).get(detail))
    assert "Waiting for review" not in page and "Please review me" not in page


def test_community_detail_pages_its_articles(client, world):
    for n in range(25):
        make_article(world.community, world.author, "published", title=f"Article number {n:02}")
    first = text(client.get(url("community-detail", community="gardening")))
    second = text(client.get(url("community-detail", community="gardening") + "?page=2"))
    assert (
        "Page 1 of 2" in first and "Article number 24" in first and "Article number 04" not in first
    )
    assert "Page 2 of 2" in second and "Article number 04" in second
    assert client.get(url("community-detail", community="gardening") + "?page=x").status_code == 200


def test_unknown_community_is_404(client):
    response = client.get(url("community-detail", community="nowhere"))
    assert response.status_code == 404
    assert "There is nothing here, or it is not yours to see." in text(response)


# --- join --------------------------------------------------------------------------------------


def test_join_creates_a_membership_once_and_redirects_back(client, world):
    as_user(client, world.outsider)
    join = url("community-join", community="gardening")
    response = client.post(join)
    assert response.status_code == 302 and response.url == "/c/gardening/"
    assert client.post(join).status_code == 302
    assert list(Membership.objects.filter(user=world.outsider).values_list("role", flat=True)) == [
        "member"
    ]
    page = text(client.get("/c/gardening/"))
    assert "You are already a member of Urban Gardening." in page


def test_joining_again_keeps_the_moderator_role(client, world):
    as_user(client, world.moderator).post(url("community-join", community="gardening"))
    assert world.community.role_of(world.moderator) == "moderator"


def test_join_needs_post_and_login(client, world):
    join = url("community-join", community="gardening")
    assert as_user(client, world.outsider).get(join).status_code == 405
    client.logout()
    response = client.post(join)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert client.post(url("community-join", community="nowhere")).status_code == 302
    as_user(client, world.outsider)
    assert client.post(url("community-join", community="nowhere")).status_code == 404


# --- create --------------------------------------------------------------------------------------


def test_member_creates_a_draft(client, world):
    as_user(client, world.member)
    new = url("article-create", community="gardening")
    form = client.get(new)
    assert form.status_code == 200
    assert 'name="title"' in text(form) and 'name="body"' in text(form)

    response = client.post(new, {"title": "  Herb spirals  ", "body": "Stones and thyme."})
    article = Article.objects.get()
    assert response.status_code == 302 and response.url == article.get_absolute_url()
    assert (article.title, article.state, article.author) == ("Herb spirals", "draft", world.member)
    assert list(article.revisions.values_list("number", "editor__username")) == [(1, "member")]
    assert "Draft saved" in text(client.get(response.url))


def test_invalid_article_shows_errors_and_creates_nothing(client, world):
    response = as_user(client, world.member).post(
        url("article-create", community="gardening"), {"title": "   ", "body": ""}
    )
    assert response.status_code == 200
    assert "This field is required." in text(response)
    assert not Article.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_non_members_may_not_create(client, world, method):
    as_user(client, world.outsider)
    response = getattr(client, method)(
        url("article-create", community="gardening"), {"title": "t", "body": "b"}
    )
    assert response.status_code == 403
    assert "Join Urban Gardening to write articles there." in text(response)
    assert not Article.objects.exists()


def test_anonymous_create_goes_to_login(client, world):
    response = client.get(url("article-create", community="gardening"))
    assert response.status_code == 302
    assert response.url == "/accounts/login/?next=/c/gardening/new/"


# --- detail --------------------------------------------------------------------------------------


def test_published_article_detail(client, world):
    article = make_article(
        world.community,
        world.author,
        "published",
        title="Raised beds",
        body="First paragraph.\n\nSecond <b>paragraph</b>.",
    )
    response = client.get(article.get_absolute_url())
    assert response.status_code == 200
    page = text(response)
    assert "Raised beds" in page and "by author" in page
    assert "<p>First paragraph.</p>" in page
    assert "Second &lt;b&gt;paragraph&lt;/b&gt;." in page
    assert "Revision 1 by author" in page
    assert "/edit/" not in page and "/transition/" not in page


@pytest.mark.parametrize(
    ("state", "viewer", "status"),
    [
        ("draft", "author", 200),
        ("draft", "moderator", 200),
        ("draft", "member", 404),
        ("draft", "outsider", 404),
        ("draft", None, 404),
        ("draft", "other_moderator", 404),
        ("submitted", "moderator", 200),
        ("submitted", "member", 404),
        ("rejected", "author", 200),
        ("rejected", None, 404),
        ("archived", None, 200),
        ("published", "outsider", 200),
    ],
)
def test_who_sees_an_article(client, world, state, viewer, status):
    article = make_article(world.community, world.author, state)
    user = getattr(world, viewer) if viewer else None
    assert as_user(client, user).get(article.get_absolute_url()).status_code == status


def test_article_under_the_wrong_community_is_404(client, world):
    article = make_article(world.community, world.author, "published")
    assert (
        client.get(url("article-detail", community="espresso", article=article.pk)).status_code
        == 404
    )
    assert client.get(url("article-detail", community="gardening", article=999)).status_code == 404


def test_detail_shows_the_buttons_the_user_may_press(client, world):
    article = make_article(world.community, world.author, "submitted")
    page = text(as_user(client, world.moderator).get(article.get_absolute_url()))
    assert article_url("article-transition", article, action="publish") in page
    assert article_url("article-transition", article, action="reject") in page
    assert article_url("article-transition", article, action="archive") not in page
    assert article_url("article-edit", article) in page
    client.logout()
    page = text(as_user(client, world.author).get(article.get_absolute_url()))
    assert "/transition/" not in page
    assert article_url("article-edit", article) in page


# --- edit --------------------------------------------------------------------------------------


def test_author_edit_keeps_a_revision(client, world):
    article = make_article(world.community, world.author, title="v1", body="one")
    as_user(client, world.author)
    form = client.get(article_url("article-edit", article))
    assert form.status_code == 200 and 'value="v1"' in text(form)
    response = client.post(article_url("article-edit", article), {"title": "v2", "body": "two"})
    assert response.status_code == 302 and response.url == article.get_absolute_url()
    article.refresh_from_db()
    assert (article.title, article.body) == ("v2", "two")
    assert list(article.revisions.values_list("number", "title", "editor__username")) == [
        (2, "v2", "author"),
        (1, "v1", "author"),
    ]
    assert "Saved as revision 2." in text(client.get(response.url))


def test_moderator_edit_keeps_a_revision_by_the_moderator(client, world):
    article = make_article(world.community, world.author, "published")
    as_user(client, world.moderator).post(
        article_url("article-edit", article), {"title": "Tidied", "body": "Tidier."}
    )
    assert article.revisions.first().editor == world.moderator
    assert Article.objects.get(pk=article.pk).title == "Tidied"


def test_saving_without_changes_keeps_no_revision(client, world):
    article = make_article(world.community, world.author, title="Same", body="Same body.")
    response = as_user(client, world.author).post(
        article_url("article-edit", article), {"title": "Same", "body": "Same body."}
    )
    assert response.status_code == 302
    assert article.revisions.count() == 1
    assert "Nothing changed" in text(client.get(response.url))


def test_invalid_edit_shows_errors_and_keeps_the_article(client, world):
    article = make_article(world.community, world.author, title="Keep me")
    response = as_user(client, world.author).post(
        article_url("article-edit", article), {"title": "", "body": "x"}
    )
    assert response.status_code == 200 and "This field is required." in text(response)
    assert Article.objects.get(pk=article.pk).title == "Keep me"
    assert article.revisions.count() == 1


@pytest.mark.parametrize("method", ["get", "post"])
def test_others_may_not_edit(client, world, method):
    article = make_article(world.community, world.author, "published", title="Mine")
    response = getattr(as_user(client, world.member), method)(
        article_url("article-edit", article), {"title": "Theirs", "body": "x"}
    )
    assert response.status_code == 403
    assert "Only the author or a moderator of Urban Gardening" in text(response)
    assert Article.objects.get(pk=article.pk).title == "Mine"


def test_editing_a_hidden_draft_is_404_not_403(client, world):
    article = make_article(world.community, world.author, "draft")
    assert (
        as_user(client, world.member).get(article_url("article-edit", article)).status_code == 404
    )


def test_anonymous_edit_goes_to_login(client, world):
    article = make_article(world.community, world.author, "published")
    response = client.post(article_url("article-edit", article), {"title": "x", "body": "y"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


# --- transitions over HTTP ----------------------------------------------------------------------


def test_moving_an_article_through_every_allowed_state(client, world):
    article = make_article(world.community, world.author)
    walk = [
        (world.author, "submit", "submitted"),
        (world.moderator, "reject", "rejected"),
        (world.author, "redraft", "draft"),
        (world.author, "submit", "submitted"),
        (world.moderator, "publish", "published"),
        (world.moderator, "archive", "archived"),
    ]
    for user, action, state in walk:
        client.force_login(user)
        response = client.post(article_url("article-transition", article, action=action))
        assert response.status_code == 302 and response.url == article.get_absolute_url()
        assert Article.objects.get(pk=article.pk).state == state
        assert f"is now {state}" in text(client.get(response.url))


@pytest.mark.parametrize(
    ("state", "user", "action", "message"),
    [
        ("submitted", "author", "publish", "Only a moderator of its community may publish"),
        ("published", "member", "reject", "Only a moderator of its community may reject"),
        ("published", "other_moderator", "archive", "Only its author or a moderator"),
        ("published", "member", "archive", "Only its author or a moderator"),
        ("draft", "moderator", "submit", "Only its author may submit"),
        ("draft", "author", "redraft", "Cannot redraft an article that is draft"),
        ("published", "moderator", "publish", "Cannot publish an article that is published"),
        ("archived", "author", "archive", "Cannot archive an article that is archived"),
    ],
)
def test_forbidden_transitions_are_403(client, world, state, user, action, message):
    article = make_article(world.community, world.author, state)
    response = as_user(client, getattr(world, user)).post(
        article_url("article-transition", article, action=action)
    )
    assert response.status_code == 403
    assert message in text(response)
    assert Article.objects.get(pk=article.pk).state == state


def test_transition_on_a_draft_you_cannot_see_is_404(client, world):
    article = make_article(world.community, world.author, "draft")
    response = as_user(client, world.member).post(
        article_url("article-transition", article, action="submit")
    )
    assert response.status_code == 404


def test_unknown_transition_action_is_404(client, world):
    article = make_article(world.community, world.author)
    response = as_user(client, world.author).post(
        article_url("article-transition", article, action="explode")
    )
    assert response.status_code == 404
    assert Article.objects.get(pk=article.pk).state == "draft"


def test_transition_needs_post_and_login(client, world):
    article = make_article(world.community, world.author)
    transition = article_url("article-transition", article, action="submit")
    assert as_user(client, world.author).get(transition).status_code == 405
    client.logout()
    response = client.post(transition)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert Article.objects.get(pk=article.pk).state == "draft"


# --- search --------------------------------------------------------------------------------------


@pytest.fixture
def searchable(world):
    make_article(world.community, world.author, "published", title="Compost bins", body="Heat.")
    make_article(
        world.community, world.author, "published", title="Balcony", body="A compost heap."
    )
    make_article(world.community, world.author, "draft", title="Compost draft", body="Hidden.")
    make_article(world.community, world.author, "archived", title="Compost archive", body="Old.")
    make_article(
        world.other_community,
        world.other_moderator,
        "published",
        title="Espresso and compost",
        body="Grounds.",
    )
    return world


def test_search_matches_titles_and_bodies_of_published_articles(client, searchable):
    response = client.get(url("article-search"), {"q": "COMPOST"})
    assert response.status_code == 200
    page = text(response)
    assert "3 articles found." in page
    assert "Compost bins" in page and "Balcony" in page and "Espresso and compost" in page
    assert "Compost draft" not in page and "Compost archive" not in page


def test_search_within_one_community(client, searchable):
    page = text(client.get(url("article-search"), {"q": "compost", "community": "espresso"}))
    assert "1 article found." in page and "Espresso and compost" in page
    assert "Compost bins" not in page


def test_search_without_a_query_asks_for_one(client, searchable):
    response = client.get(url("article-search"))
    assert response.status_code == 200
    assert "Search the titles and text of published articles." in text(response)
    assert "Compost bins" not in text(response)


def test_search_with_no_match(client, searchable):
    assert "No published article matches." in text(client.get(url("article-search"), {"q": "zzz"}))


def test_search_for_an_unknown_community_is_400(client, searchable):
    response = client.get(url("article-search"), {"q": "compost", "community": "nowhere"})
    assert response.status_code == 400
    assert "Select a valid choice." in text(response)


def test_search_pages_keep_the_query(client, world):
    for n in range(21):
        make_article(world.community, world.author, "published", title=f"Tomato {n}")
    page = text(client.get(url("article-search"), {"q": "tomato"}))
    assert "21 articles found." in page
    assert 'href="?q=tomato&amp;page=2"' in page


# --- my articles ---------------------------------------------------------------------------------


def test_my_articles_are_grouped_by_state(client, world):
    make_article(world.community, world.author, "draft", title="My draft")
    make_article(world.community, world.author, "published", title="My published")
    make_article(world.community, world.member, "draft", title="Not mine")
    response = as_user(client, world.author).get(url("my-articles"))
    assert response.status_code == 200
    page = text(response)
    assert "Not mine" not in page
    headings = ["Draft", "Submitted", "Published", "Rejected", "Archived"]
    positions = [page.index(f">{h}</span>") for h in headings]
    assert positions == sorted(positions)
    assert positions[0] < page.index("My draft") < positions[1]
    assert positions[2] < page.index("My published") < positions[3]


def test_my_articles_when_there_are_none(client, world):
    page = text(as_user(client, world.outsider).get(url("my-articles")))
    assert "You have not written anything yet." in page


def test_my_articles_needs_login(client):
    response = client.get(url("my-articles"))
    assert response.status_code == 302 and response.url == "/accounts/login/?next=/me/articles/"


# --- login and logout ---------------------------------------------------------------------------


def test_login_page_logs_in_and_logout_logs_out(client, settings, django_user_model):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_user("dora", password="demo-pass-dora")
    make_community("gardening")

    page = client.get(url("login") + "?next=/c/gardening/")
    assert page.status_code == 200
    assert 'name="username"' in text(page) and 'value="/c/gardening/"' in text(page)

    wrong = client.post(url("login"), {"username": "dora", "password": "nope"})
    assert wrong.status_code == 200 and "Please enter a correct username and password" in text(
        wrong
    )

    response = client.post(
        url("login"), {"username": "dora", "password": "demo-pass-dora", "next": "/c/gardening/"}
    )
    assert response.status_code == 302 and response.url == "/c/gardening/"
    assert "dora" in text(client.get("/"))

    assert client.get(url("logout")).status_code == 405
    response = client.post(url("logout"))
    assert response.status_code == 302 and response.url == "/"
    assert "Log in" in text(client.get("/"))
    assert client.get(url("my-articles")).status_code == 302


def test_pages_link_the_stylesheet_and_fit_a_phone(client):
    page = text(client.get("/"))
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert 'href="/static/community/site.css"' in page
    css = Path(finders.find("community/site.css")).read_text()
    assert "@media (max-width: 40rem)" in css
