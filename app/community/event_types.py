"""The demo site's event types: one declaration each, no view touched."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventtrail import model_event, state_event, url_event


def community_id(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Runs on the delivery worker (cached), never on the request thread."""
    from community.models import Community

    pk = Community.objects.filter(slug=kwargs.get("community")).values_list("pk", flat=True).first()
    return {"eventtrail.community.id": str(pk)} if pk is not None else {}


def article_fields(article: Any) -> dict[str, Any]:
    return {
        "eventtrail.community.id": str(article.community_id),
        "eventtrail.community.slug": article.community.slug,
        "eventtrail.target.type": "article",
        "eventtrail.target.id": str(article.pk),
    }


def created_article(article: Any) -> dict[str, Any]:
    return {**article_fields(article), "eventtrail.target.state": article.state,
            "_user": article.author}


def changed_state(article: Any) -> dict[str, Any]:
    fields = article_fields(article)
    applied = getattr(article, "last_transition", None)
    if applied is not None:
        fields["_user"] = applied.by
    return fields


def edited(revision: Any) -> dict[str, Any]:
    article = revision.article
    return {**article_fields(article), "eventtrail.target.state": article.state,
            "_user": revision.editor}


def joined(membership: Any) -> dict[str, Any]:
    return {
        "eventtrail.community.id": str(membership.community_id),
        "eventtrail.community.slug": membership.community.slug,
        "_user": membership.user,
    }


url_event("community.view", "community-detail", community="community", context=community_id,
          description="A community page was viewed.")
url_event("article.view", "article-detail", community="community", target=("article", "article"),
          context=community_id, description="An article was read.")
url_event("article.search", "article-search", search_param="q", type="info",
          description="Published articles were searched.")
model_event("community.join", "community.Membership", fields=joined, type="creation",
            description="A user joined a community.")
model_event("article.create", "community.Article", fields=created_article,
            description="An article was written (its first state is in eventtrail.target.state).")
model_event("article.edit", "community.Revision", fields=edited, type="change",
            condition=lambda revision: revision.number > 1,
            description="An article was edited (every revision after the first).")
state_event("article.state_change", "community.Article", "state", fields=changed_state,
            description="An article moved between states, in a request, the admin or a shell.")


def user_roles(user: Any) -> list[str]:
    """EVENTTRAIL["USER_ROLES"] hook: moderators carry the role on their events."""
    from community.models import Membership

    moderates = Membership.objects.filter(user=user, role=Membership.Role.MODERATOR).exists()
    return ["moderator"] if moderates else []


def moderated_communities(user: Any) -> list[str]:
    """EVENTTRAIL["MODERATED_COMMUNITIES"] hook: slugs of the communities the user moderates."""
    from community.models import Membership

    if not getattr(user, "is_authenticated", False):
        return []
    return list(Membership.objects.filter(user=user, role=Membership.Role.MODERATOR)
                .values_list("community__slug", flat=True))


def target_labels(viewer: Any, kind: str, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """EVENTTRAIL["TARGET_LABELS"] hook: titles and links of the articles ``viewer`` may open,
    by the site's own rule (``Article.visible_to``, the rule of the article page itself)."""
    from django.urls import reverse

    from community.models import Article

    if kind != "article":
        return {}
    pks = [int(i) for i in ids if i.isdigit() and len(i) < 19]
    out: dict[str, tuple[str, str | None]] = {}
    for article in Article.visible_to(viewer).filter(pk__in=pks).select_related("community"):
        url = reverse("article-detail", args=[article.community.slug, article.pk])
        out[str(article.pk)] = (article.title, url)
    return out
