"""Event Trail wired into the demo site's pages: the browser script, the video, Kibana's link."""
import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from tests.support.community_factories import build_world, make_article

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return build_world()


def test_every_page_carries_the_browser_script_and_its_token(client, world):
    article = make_article(world.community, world.author, state="published")
    for path in ("/", "/communities/", f"/c/gardening/a/{article.pk}/"):
        html = client.get(path).content.decode()
        assert 'id="eventtrail-config"' in html and "eventtrail/eventtrail.js" in html


def test_an_article_with_a_video_marks_it_for_video_events(client, world):
    article = make_article(world.community, world.author, state="published")
    article.video = "eventtrail/demo/demo.webm"
    article.save()
    html = client.get(f"/c/gardening/a/{article.pk}/").content.decode()
    assert f'data-eventtrail-video="article-{article.pk}"' in html
    assert "/static/eventtrail/demo/demo.webm" in html


@override_settings(EVENTTRAIL={"KIBANA_URL": "http://localhost:5601"})
def test_only_superusers_see_the_kibana_link(client, world):
    assert "localhost:5601" not in client.get("/").content.decode()
    client.force_login(world.moderator)
    assert "localhost:5601" not in client.get("/").content.decode()
    staff = get_user_model().objects.create_user("staffer", is_staff=True)
    client.force_login(staff)
    assert "localhost:5601" not in client.get("/").content.decode()
    root = get_user_model().objects.create_user("root", is_superuser=True, is_staff=True)
    client.force_login(root)
    assert '<a href="http://localhost:5601" rel="noopener">Kibana</a>' in client.get("/").content.decode()


def test_seed_gives_one_published_article_the_demo_video():
    import eventtrail
    from community.models import Article
    from community.seed import seed

    with eventtrail.suppressed():
        seed()
    (article,) = Article.objects.exclude(video="")
    assert article.state == "published" and article.video == "eventtrail/demo/demo.webm"
