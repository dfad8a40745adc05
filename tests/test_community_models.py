"""Community models: who writes, who edits, who sees, and the revisions every edit keeps."""

import pytest
from community.models import Article, Membership, Revision
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from tests.support.community_factories import add_member, build_world, make_article

pytestmark = pytest.mark.django_db


def test_a_member_starts_a_draft_with_its_first_revision():
    world = build_world()
    article = Article.start(
        community=world.community, author=world.author, title="Worm farms", body="Start small."
    )
    assert article.state == "draft"
    assert [(r.number, r.editor, r.title, r.body) for r in article.revisions.all()] == [
        (1, world.author, "Worm farms", "Start small.")
    ]


def test_a_non_member_cannot_start_an_article():
    world = build_world()
    with pytest.raises(PermissionDenied, match="Only members of Urban Gardening"):
        Article.start(community=world.community, author=world.outsider, title="t", body="b")
    assert not Article.objects.exists()


def test_every_edit_keeps_a_numbered_revision_with_its_editor():
    world = build_world()
    article = make_article(world.community, world.author, title="v1", body="one")
    article.edit(by=world.author, title="v2", body="two")
    article.edit(by=world.moderator, title="v3", body="three")

    stored = Article.objects.get(pk=article.pk)
    assert (stored.title, stored.body) == ("v3", "three")
    assert list(stored.revisions.values_list("number", "editor__username", "title", "body")) == [
        (3, "moderator", "v3", "three"),
        (2, "author", "v2", "two"),
        (1, "author", "v1", "one"),
    ]


@pytest.mark.parametrize("editor", ["member", "outsider", "other_moderator"])
def test_others_cannot_edit(editor):
    world = build_world()
    article = make_article(world.community, world.author, "published", title="v1", body="one")
    with pytest.raises(PermissionDenied):
        article.edit(by=getattr(world, editor), title="vandal", body="x")
    stored = Article.objects.get(pk=article.pk)
    assert (stored.title, stored.revisions.count()) == ("v1", 1)


@pytest.mark.parametrize(
    ("state", "public"),
    [
        ("draft", False),
        ("submitted", False),
        ("rejected", False),
        ("published", True),
        ("archived", True),
    ],
)
def test_who_can_view_each_state(state, public):
    world = build_world()
    article = make_article(world.community, world.author, state)
    assert article.can_view(world.author)
    assert article.can_view(world.moderator)
    for viewer in [world.member, world.outsider, world.other_moderator, AnonymousUser()]:
        assert article.can_view(viewer) is public


def test_roles_are_per_community():
    world = build_world()
    article = make_article(world.community, world.author)
    assert article.roles_of(world.author) == {"author"}
    assert article.roles_of(world.moderator) == {"moderator"}
    assert article.roles_of(world.other_moderator) == frozenset()
    assert article.roles_of(AnonymousUser()) == frozenset()


def test_joining_twice_keeps_one_membership_and_its_role():
    world = build_world()
    membership, created = world.community.join(world.outsider)
    assert created and membership.role == "member"
    assert world.community.join(world.outsider)[1] is False
    assert world.community.join(world.moderator)[1] is False
    assert world.community.role_of(world.moderator) == "moderator"
    assert Membership.objects.filter(community=world.community).count() == 4


def test_one_membership_per_user_and_community():
    world = build_world()
    with pytest.raises(IntegrityError), transaction.atomic():
        add_member(world.author, world.community, Membership.Role.MODERATOR)


def test_revision_numbers_are_unique_per_article():
    world = build_world()
    article = make_article(world.community, world.author)
    with pytest.raises(IntegrityError), transaction.atomic():
        Revision.objects.create(article=article, editor=world.author, title="t", body="b", number=1)


def test_history_survives_its_editor():
    world = build_world()
    article = make_article(world.community, world.author)
    article.edit(by=world.moderator, title="Copyedited", body="Better.")
    world.moderator.delete()
    assert list(article.revisions.values_list("number", "editor")) == [
        (2, None),
        (1, world.author.pk),
    ]
