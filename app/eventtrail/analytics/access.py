"""Who may see which analytics: their own, their moderated communities', or (staff) all."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from eventtrail.privacy import stored_user_id
from eventtrail.stores.query import scope_for


def own_id(user: Any) -> str:
    return stored_user_id(user.pk)


def sees_everything(user: Any) -> bool:
    return scope_for(user) is None


def moderated(user: Any) -> tuple[str, ...]:
    """Communities the user moderates, from the MODERATED_COMMUNITIES hook."""
    scope = scope_for(user)
    return () if scope is None else scope.communities


def check_user(user: Any, subject: str) -> None:
    """A user's analytics are theirs; staff and view_all_events holders see anyone's."""
    if subject != own_id(user) and not sees_everything(user):
        raise PermissionDenied("these are another user's analytics")


def check_community(user: Any, slug: str | None) -> None:
    """A community's analytics are for its moderators and staff; site-wide ones for staff."""
    scope = scope_for(user)
    if scope is None:
        return
    if slug is None:
        raise PermissionDenied("site-wide analytics are for staff")
    if slug not in scope.communities:
        raise PermissionDenied("you do not moderate this community")
