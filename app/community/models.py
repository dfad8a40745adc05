"""Communities, memberships, and articles with states and revisions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from community import states
from community.states import State


class Community(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "communities"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("community-detail", kwargs={"community": self.slug})

    def role_of(self, user: Any) -> str | None:
        """The user's membership role here, or None for non-members and anonymous users."""
        if not user.is_authenticated:
            return None
        return self.memberships.filter(user=user).values_list("role", flat=True).first()

    def join(self, user: Any) -> tuple[Membership, bool]:
        """Make ``user`` a member; joining again keeps the existing membership and its role."""
        return Membership.objects.get_or_create(
            user=user, community=self, defaults={"role": Membership.Role.MEMBER}
        )


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        MODERATOR = "moderator", "Moderator"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["community", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "community"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.community} ({self.role})"


class Article(models.Model):
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="articles")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="articles"
    )
    title = models.CharField(max_length=200)
    body = models.TextField()
    # Change it through transition(); the admin may set it directly as an override.
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # A static path of a video shown with the article (the demo's video events), or empty.
    video = models.CharField(max_length=200, blank=True, default="")

    # Set by transition() for the duration of its save, so signal receivers can tell who did
    # what; None on every other save (edits, the admin, a shell).
    last_transition: states.AppliedTransition | None = None

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["community", "state", "-created_at"], name="article_listing")
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse(
            "article-detail", kwargs={"community": self.community.slug, "article": self.pk}
        )

    @classmethod
    def start(cls, *, community: Community, author: Any, title: str, body: str) -> Article:
        """Create a draft by a member of ``community``, with its first revision."""
        if community.role_of(author) is None:
            raise PermissionDenied(f"Only members of {community} may write articles there.")
        with transaction.atomic():
            article = cls.objects.create(community=community, author=author, title=title, body=body)
            article.add_revision(editor=author)
        return article

    def roles_of(self, user: Any) -> frozenset[str]:
        """The roles (states.AUTHOR, states.MODERATOR) ``user`` holds towards this article."""
        if not user.is_authenticated:
            return frozenset()
        roles = set()
        if self.author_id == user.pk:
            roles.add(states.AUTHOR)
        if self.community.role_of(user) == Membership.Role.MODERATOR:
            roles.add(states.MODERATOR)
        return frozenset(roles)

    @property
    def is_public(self) -> bool:
        return self.state in states.PUBLIC_STATES

    def can_view(self, user: Any) -> bool:
        return self.is_public or bool(self.roles_of(user))

    @classmethod
    def visible_to(cls, user: Any) -> models.QuerySet[Article]:
        """The articles ``can_view`` lets ``user`` open, as one query: public ones, their own,
        and any in a community they moderate."""
        visible = models.Q(state__in=states.PUBLIC_STATES)
        if getattr(user, "is_authenticated", False):
            moderated = Membership.objects.filter(user=user, role=Membership.Role.MODERATOR)
            visible |= models.Q(author=user) | models.Q(
                community__in=moderated.values("community"))
        return cls.objects.filter(visible)

    def can_edit(self, user: Any) -> bool:
        return bool(self.roles_of(user))

    def edit(self, *, by: Any, title: str, body: str) -> Revision:
        """Save new content and keep it as the next revision."""
        if not self.can_edit(by):
            raise PermissionDenied("Only the author or a moderator of its community may edit it.")
        with transaction.atomic():
            self.title, self.body = title, body
            self.save(update_fields=["title", "body", "updated_at"])
            return self.add_revision(editor=by)

    def add_revision(self, *, editor: Any) -> Revision:
        """Record the current title and body as the next numbered revision."""
        with transaction.atomic():
            # Lock the article so two edits at once cannot take the same number.
            list(Article.objects.select_for_update().filter(pk=self.pk).values_list("pk"))
            last = self.revisions.aggregate(n=models.Max("number"))["n"] or 0
            return self.revisions.create(
                editor=editor, title=self.title, body=self.body, number=last + 1
            )

    def transition(self, action: str, *, by: Any) -> states.AppliedTransition:
        """Apply ``action`` (submit, publish, reject, redraft, archive) as ``by``; see states."""
        return states.apply(self, action, by)


class Revision(models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="revisions")
    # Null once the editor's account is deleted; the history itself stays.
    editor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="revisions"
    )
    title = models.CharField(max_length=200)
    body = models.TextField()
    number = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["article", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["article", "number"], name="one_revision_number")
        ]

    def __str__(self) -> str:
        return f"{self.article} (revision {self.number})"
