"""The article state machine: every state x action x actor, plus how a transition is saved."""

import itertools

import pytest
from community import states
from community.models import Article, Membership
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models.signals import post_save, pre_save

from tests.support.community_factories import add_member, build_world, make_article, make_user

STATES = ["draft", "submitted", "published", "rejected", "archived"]
ACTIONS = ["submit", "publish", "reject", "redraft", "archive"]

# Written out by hand from the issue, independent of states.TRANSITIONS.
ALLOWED = {
    ("draft", "submit"): "submitted",
    ("submitted", "publish"): "published",
    ("submitted", "reject"): "rejected",
    ("rejected", "redraft"): "draft",
    ("published", "archive"): "archived",
}
WHO_MAY = {
    "submit": {"author"},
    "publish": {"moderator"},
    "reject": {"moderator"},
    "redraft": {"author"},
    "archive": {"author", "moderator"},
}
# Actor name -> the roles that actor holds towards the article.
ACTORS = {
    "author": {"author"},
    "moderator": {"moderator"},
    "author_moderator": {"author", "moderator"},
    "member": set(),
    "outsider": set(),
    "other_moderator": set(),
    "anonymous": set(),
}


def setup_case(world, state, actor):
    """The article in ``state`` and the user acting on it as ``actor``."""
    if actor == "author_moderator":
        article = make_article(world.community, world.moderator, state)
        return article, world.moderator
    article = make_article(world.community, world.author, state)
    if actor == "anonymous":
        return article, AnonymousUser()
    return article, getattr(world, actor)


def test_the_table_matches_the_issue():
    table = {(t.source.value, t.action): t.target.value for t in states.TRANSITIONS.values()}
    assert table == ALLOWED
    assert {t.action: set(t.roles) for t in states.TRANSITIONS.values()} == WHO_MAY


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "action", "actor"), list(itertools.product(STATES, ACTIONS, ACTORS))
)
def test_every_state_action_and_actor(state, action, actor):
    world = build_world()
    article, user = setup_case(world, state, actor)
    permitted = bool(WHO_MAY[action] & ACTORS[actor])
    target = ALLOWED.get((state, action))

    if permitted and target:
        applied = article.transition(action, by=user)
        assert (applied.source, applied.target, applied.action) == (state, target, action)
        assert article.state == target
    else:
        expected = states.NotAllowed if not permitted else states.WrongState
        with pytest.raises(expected) as raised:
            article.transition(action, by=user)
        assert isinstance(raised.value, PermissionDenied)
        assert action in str(raised.value)
        target = state
    assert Article.objects.get(pk=article.pk).state == target


@pytest.mark.django_db
def test_unknown_action_is_a_clear_value_error():
    world = build_world()
    article = make_article(world.community, world.author)
    with pytest.raises(states.UnknownAction) as raised:
        article.transition("frobnicate", by=world.author)
    assert isinstance(raised.value, ValueError)
    assert not isinstance(raised.value, PermissionDenied)
    assert str(raised.value) == (
        "unknown action 'frobnicate'; expected one of submit, publish, reject, redraft, archive"
    )
    assert Article.objects.get(pk=article.pk).state == "draft"


@pytest.mark.django_db
def test_the_whole_life_of_an_article():
    world = build_world()
    article = make_article(world.community, world.author)
    walk = [
        ("submit", world.author, "submitted"),
        ("reject", world.moderator, "rejected"),
        ("redraft", world.author, "draft"),
        ("submit", world.author, "submitted"),
        ("publish", world.moderator, "published"),
        ("archive", world.author, "archived"),
    ]
    for action, user, expected in walk:
        article.transition(action, by=user)
        assert Article.objects.get(pk=article.pk).state == expected


@pytest.mark.django_db
def test_a_transition_saves_only_state_and_tells_receivers_who_did_it():
    world = build_world()
    article = make_article(world.community, world.author)
    seen = []

    def before(sender, instance, update_fields, **kwargs):
        old = Article.objects.get(pk=instance.pk).state
        seen.append(("pre", old, instance.state, frozenset(update_fields)))

    def after(sender, instance, update_fields, **kwargs):
        seen.append(("post", instance.last_transition, frozenset(update_fields)))

    pre_save.connect(before, sender=Article)
    post_save.connect(after, sender=Article)
    try:
        article.transition("submit", by=world.author)
    finally:
        pre_save.disconnect(before, sender=Article)
        post_save.disconnect(after, sender=Article)

    fields = frozenset({"state", "updated_at"})
    applied = states.AppliedTransition("submit", "draft", "submitted", world.author)
    assert seen == [("pre", "draft", "submitted", fields), ("post", applied, fields)]
    assert article.last_transition is None


@pytest.mark.django_db
def test_a_stale_copy_cannot_undo_what_another_moderator_did():
    world = build_world()
    second = make_user("second-moderator")
    add_member(second, world.community, Membership.Role.MODERATOR)
    article = make_article(world.community, world.author, "submitted")
    stale = Article.objects.get(pk=article.pk)

    article.transition("publish", by=world.moderator)
    with pytest.raises(states.WrongState, match="that is published"):
        stale.transition("reject", by=second)
    assert Article.objects.get(pk=article.pk).state == "published"
    assert stale.state == "published"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "actor", "expected"),
    [
        ("draft", "author", ["submit"]),
        ("draft", "moderator", []),
        ("submitted", "moderator", ["publish", "reject"]),
        ("submitted", "author", []),
        ("submitted", "author_moderator", ["publish", "reject"]),
        ("rejected", "author", ["redraft"]),
        ("published", "author", ["archive"]),
        ("published", "moderator", ["archive"]),
        ("published", "member", []),
        ("published", "anonymous", []),
        ("archived", "moderator", []),
    ],
)
def test_allowed_transitions_are_the_buttons_to_draw(state, actor, expected):
    world = build_world()
    article, user = setup_case(world, state, actor)
    assert [t.action for t in states.allowed_transitions(article, user)] == expected
