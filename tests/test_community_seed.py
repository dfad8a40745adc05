"""manage.py seed_demo: the data it makes, that it is the same every time, and a second run."""

from collections import Counter
from io import StringIO

import pytest
from community import seed
from community.models import Article, Community, Membership, Revision
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.db.models import Count, Max
from django.db.models.signals import post_save

# Written out by hand from the issue, independent of states.TRANSITIONS.
ALLOWED = {
    ("draft", "submit"): "submitted",
    ("submitted", "publish"): "published",
    ("submitted", "reject"): "rejected",
    ("rejected", "redraft"): "draft",
    ("published", "archive"): "archived",
}


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_seed():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def final_state(steps):
    state = "draft"
    for step in steps:
        if step.action != "edit":
            state = ALLOWED[(state, step.action)]
    return state


def snapshot():
    """Everything the seed owns, by natural keys so it compares across databases."""
    return {
        "users": sorted(
            get_user_model().objects.values_list("username", "password", "is_superuser")
        ),
        "communities": sorted(Community.objects.values_list("slug", "name", "description")),
        "memberships": sorted(
            Membership.objects.values_list("community__slug", "user__username", "role")
        ),
        "articles": sorted(
            Article.objects.values_list(
                "id", "community__slug", "author__username", "title", "body", "state", "updated_at"
            )
        ),
        "revisions": sorted(
            Revision.objects.values_list("article_id", "number", "editor__username", "title")
        ),
    }


def test_the_plan_is_the_same_every_time():
    assert seed.build_plan() == seed.build_plan()
    assert seed.build_plan(seed=1) != seed.build_plan()


def test_the_plan_has_the_promised_shape():
    plan = seed.build_plan()
    assert len(plan.articles) == 300
    assert Counter(a.community for a in plan.articles) == {t.slug: 50 for t in seed.TOPICS}
    states = Counter(final_state(a.steps) for a in plan.articles)
    assert set(states) == {"draft", "submitted", "published", "rejected", "archived"}
    assert states["published"] > 100
    for slug, members in plan.memberships.items():
        assert "moderator" in members.values(), slug
        authors = {a.author for a in plan.articles if a.community == slug}
        assert authors <= set(members), slug


@pytest.mark.django_db
def test_seed_demo_creates_the_demo_data_through_the_state_machine(fast_hashing):
    saves = []

    def record(sender, instance, created, update_fields, **kwargs):
        saves.append(
            (instance.pk, created, update_fields and frozenset(update_fields), instance.state)
        )

    post_save.connect(record, sender=Article)
    try:
        output = run_seed()
    finally:
        post_save.disconnect(record, sender=Article)

    users = get_user_model().objects
    assert users.count() == 51
    assert Community.objects.count() == 6
    assert Article.objects.count() == 300
    states = dict(Article.objects.values_list("state").annotate(n=Count("id")))
    assert set(states) == {"draft", "submitted", "published", "rejected", "archived"}

    # Articles start as bulk-created drafts; every later state change is one allowed transition.
    replayed = {}
    for pk, created, fields, state in saves:
        assert not created
        if "state" in fields:
            assert fields == {"state", "updated_at"}
            assert (replayed.get(pk, "draft"), state) in {(s, t) for (s, _), t in ALLOWED.items()}
            replayed[pk] = state
    for pk, state in Article.objects.values_list("pk", "state"):
        assert replayed.get(pk, "draft") == state

    # The database holds exactly the plan.
    plan = seed.build_plan()
    assert sorted(
        Article.objects.values_list("community__slug", "author__username", "title", "state")
    ) == sorted((a.community, a.author, a.title, final_state(a.steps)) for a in plan.articles)
    assert sorted(Membership.objects.values_list("community__slug", "user__username", "role")) == (
        sorted(
            (slug, user, role) for slug, ms in plan.memberships.items() for user, role in ms.items()
        )
    )

    # Revisions: the first is the author's, numbers have no gaps, the newest matches the article.
    for article in Article.objects.annotate(last=Max("revisions__number"), n=Count("revisions")):
        assert article.last == article.n
        first, newest = article.revisions.get(number=1), article.revisions.get(number=article.last)
        assert first.editor_id == article.author_id
        assert (newest.title, newest.body) == (article.title, article.body)
    assert Revision.objects.count() > Article.objects.count()

    # The demo logins work and hold the roles the output promises.
    for login in seed.DEMO_LOGINS:
        assert authenticate(username=login.username, password=login.password) is not None
        assert f"{login.username} " in output and login.password in output
    assert authenticate(username="dave", password="demo-pass") is not None
    assert users.get(username="admin").is_superuser
    gardening = Community.objects.get(slug="urban-gardening")
    assert gardening.role_of(users.get(username="alice")) == "moderator"
    assert gardening.role_of(users.get(username="bob")) == "member"
    assert Community.objects.get(slug="birdwatching").role_of(users.get(username="bob")) is None
    bob_states = set(Article.objects.filter(author__username="bob").values_list("state", flat=True))
    assert {"draft", "submitted", "rejected", "published"} <= bob_states


@pytest.mark.django_db
def test_a_second_run_changes_nothing(fast_hashing):
    run_seed()
    bob = get_user_model().objects.get(username="bob")
    gardening = Community.objects.get(slug="urban-gardening")
    mine = Article.start(community=gardening, author=bob, title="Bob's own", body="Kept.")
    before = snapshot()

    output = run_seed()

    assert "nothing changed" in output
    assert "alice  / demo-pass-alice" in output
    assert snapshot() == before
    assert Article.objects.filter(pk=mine.pk).exists()


@pytest.mark.django_db
def test_a_missing_community_is_seeded_again_and_the_rest_left_alone(fast_hashing):
    run_seed()
    Community.objects.filter(slug="birdwatching").delete()
    before = snapshot()

    run_seed()

    after = snapshot()
    assert Community.objects.count() == 6
    assert Article.objects.filter(community__slug="birdwatching").count() == 50
    assert after["users"] == before["users"]
    assert set(before["articles"]) <= set(after["articles"])
    assert len(after["articles"]) == len(before["articles"]) + 50
