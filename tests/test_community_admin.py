"""The admin pages for community models render, and admin edits keep revisions too."""

import pytest
from community.models import Article
from django.urls import reverse

from tests.support.community_factories import build_world, make_article

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_data(client, django_user_model):
    world = build_world()
    article = make_article(world.community, world.author, "published", title="Seed swaps")
    admin = django_user_model.objects.create_superuser("root", "root@example.org", None)
    client.force_login(admin)
    return client, world, article, admin


@pytest.mark.parametrize("model", ["community", "membership", "article", "revision"])
def test_changelist_and_change_pages_render(admin_client_with_data, model):
    client, world, article, _ = admin_client_with_data
    objects = {
        "community": world.community,
        "membership": world.community.memberships.first(),
        "article": article,
        "revision": article.revisions.get(),
    }
    changelist = client.get(reverse(f"admin:community_{model}_changelist"))
    assert changelist.status_code == 200
    change = client.get(reverse(f"admin:community_{model}_change", args=[objects[model].pk]))
    assert change.status_code == 200
    assert str(objects[model]) in change.content.decode()


def test_admin_edit_keeps_a_revision_and_may_set_the_state(admin_client_with_data):
    client, world, article, admin = admin_client_with_data
    response = client.post(
        reverse("admin:community_article_change", args=[article.pk]),
        {
            "community": world.community.pk,
            "author": world.author.pk,
            "title": "Seed swaps, revised",
            "body": "New body.",
            "state": "archived",
            "created_at_0": "2025-01-01",
            "created_at_1": "10:00:00",
            "revisions-TOTAL_FORMS": "1",
            "revisions-INITIAL_FORMS": "1",
            "revisions-MIN_NUM_FORMS": "0",
            "revisions-MAX_NUM_FORMS": "1000",
            "revisions-0-id": article.revisions.get().pk,
            "revisions-0-article": article.pk,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    article = Article.objects.get(pk=article.pk)
    assert (article.title, article.state) == ("Seed swaps, revised", "archived")
    assert list(article.revisions.values_list("number", "editor__username")) == [
        (2, "root"),
        (1, "author"),
    ]
