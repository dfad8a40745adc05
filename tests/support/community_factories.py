"""Small builders for the community tests: users, communities, memberships and articles."""

from dataclasses import dataclass

from community.models import Article, Community, Membership
from django.contrib.auth import get_user_model


def make_user(username, **extra):
    # No password: hashing is slow, and tests log in with force_login.
    return get_user_model().objects.create_user(username=username, **extra)


def make_community(slug="gardening", name=None, description="Growing things together."):
    return Community.objects.create(
        slug=slug, name=name or slug.replace("-", " ").title(), description=description
    )


def add_member(user, community, role=Membership.Role.MEMBER):
    return Membership.objects.create(user=user, community=community, role=role)


def make_article(community, author, state="draft", title="Balcony tomatoes", body="Sun and water."):
    """An article with its first revision, put straight into ``state`` (bypassing transitions)."""
    article = Article.start(community=community, author=author, title=title, body=body)
    if state != article.state:
        Article.objects.filter(pk=article.pk).update(state=state)
        article.refresh_from_db()
    return article


@dataclass
class World:
    community: Community
    other_community: Community
    author: object  # member who writes the articles
    moderator: object  # moderator of community
    member: object  # plain member of community
    outsider: object  # logged in, member of nothing
    other_moderator: object  # moderates other_community only


def build_world():
    community = make_community("gardening", "Urban Gardening")
    other = make_community("espresso", "Home Espresso")
    world = World(
        community=community,
        other_community=other,
        author=make_user("author"),
        moderator=make_user("moderator"),
        member=make_user("member"),
        outsider=make_user("outsider"),
        other_moderator=make_user("othermod"),
    )
    add_member(world.author, community)
    add_member(world.moderator, community, Membership.Role.MODERATOR)
    add_member(world.member, community)
    add_member(world.other_moderator, other, Membership.Role.MODERATOR)
    return world
