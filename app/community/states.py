"""The article state machine: the one table of transitions and the one place that enforces it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import models, transaction

if TYPE_CHECKING:
    from community.models import Article


class State(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    PUBLISHED = "published", "Published"
    REJECTED = "rejected", "Rejected"
    ARCHIVED = "archived", "Archived"


# Roles a user can hold towards one article; computed by Article.roles_of().
AUTHOR = "author"
MODERATOR = "moderator"

# States anyone may read; the others are seen only by the author and the community's moderators.
PUBLIC_STATES = frozenset({State.PUBLISHED, State.ARCHIVED})


@dataclass(frozen=True)
class Transition:
    action: str
    source: State
    target: State
    roles: frozenset[str]  # holding any one of these roles permits the action
    label: str  # button text


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition(
            "submit", State.DRAFT, State.SUBMITTED, frozenset({AUTHOR}), "Submit for review"
        ),
        Transition("publish", State.SUBMITTED, State.PUBLISHED, frozenset({MODERATOR}), "Publish"),
        Transition("reject", State.SUBMITTED, State.REJECTED, frozenset({MODERATOR}), "Reject"),
        Transition("redraft", State.REJECTED, State.DRAFT, frozenset({AUTHOR}), "Back to draft"),
        Transition(
            "archive", State.PUBLISHED, State.ARCHIVED, frozenset({AUTHOR, MODERATOR}), "Archive"
        ),
    )
}
ACTIONS = tuple(TRANSITIONS)


class UnknownAction(ValueError):
    """The action is not in the transitions table."""

    def __init__(self, action: str) -> None:
        super().__init__(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        self.action = action


class TransitionError(PermissionDenied):
    """The action exists but may not happen now; views turn it into a 403."""


class NotAllowed(TransitionError):
    """The user holds none of the roles the action needs."""


class WrongState(TransitionError):
    """The article is not in the state the action starts from."""


@dataclass(frozen=True)
class AppliedTransition:
    """What a transition did; receivers of the save it makes read it as instance.last_transition."""

    action: str
    source: State
    target: State
    by: Any  # the acting user


def get_transition(action: str) -> Transition:
    try:
        return TRANSITIONS[action]
    except KeyError:
        raise UnknownAction(action) from None


def _role_names(roles: frozenset[str]) -> str:
    names = {AUTHOR: "its author", MODERATOR: "a moderator of its community"}
    return " or ".join(names[role] for role in sorted(roles))


def check(article: Article, action: str, by: Any) -> Transition:
    """Return the transition if ``by`` may apply ``action`` to ``article`` now, else raise."""
    transition = get_transition(action)
    if not transition.roles & article.roles_of(by):
        raise NotAllowed(f"Only {_role_names(transition.roles)} may {action} this article.")
    if article.state != transition.source:
        raise WrongState(
            f"Cannot {action} an article that is {article.state}; "
            f"{action} needs a {transition.source} article."
        )
    return transition


def allowed_transitions(article: Article, by: Any) -> list[Transition]:
    """The transitions ``by`` may apply now, in table order; used to draw the buttons."""
    roles = article.roles_of(by)
    return [t for t in TRANSITIONS.values() if t.source == article.state and t.roles & roles]


def apply(article: Article, action: str, by: Any) -> AppliedTransition:
    """Check and apply one transition, saving only state and updated_at for a clean signal."""
    from community.models import Article

    with transaction.atomic():
        # Re-read under a row lock so two moderators acting at once cannot both win.
        current = (
            Article.objects.select_for_update()
            .filter(pk=article.pk)
            .values_list("state", flat=True)
        ).get()
        if current != article.state:
            article.state = current
        transition = check(article, action, by)
        applied = AppliedTransition(action, transition.source, transition.target, by)
        article.state = transition.target
        article.last_transition = applied
        try:
            article.save(update_fields=["state", "updated_at"])
        finally:
            # Only the save this transition makes may carry it; later saves are not transitions.
            article.last_transition = None
    return applied
