"""Module fixtures for the analytics tests: the seeded site, its history, each store."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import eventtrail
import pytest
from community.activity import default_until
from community.models import Article, Community, Membership
from community.seed import seed
from community.states import PUBLIC_STATES
from django.contrib.auth import get_user_model
from django.core.cache import cache
from eventtrail.delivery.sinks import DatabaseSink
from eventtrail.models import StoredEvent
from eventtrail.stores.database import reset_rollups

from tests.support import analytics_data as data
from tests.support import pg_fixture

DATA_STREAM = "logs-eventtrail-analyticstest"
PG_ALIAS = "analytics_pg"
UNTIL = default_until()
EVENTS = 6000


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker):
    """The demo site seeded, its history generated with the crafted cases, in the database
    store; whatever the store held before is put back afterwards."""
    User = get_user_model()
    with django_db_blocker.unblock():
        users_before = set(User.objects.values_list("pk", flat=True))
        stash = list(StoredEvent.objects.using("events").all())
        StoredEvent.objects.using("events").all().delete()
        reset_rollups("events")
        with eventtrail.suppressed():
            seed()
        hidden_case = hidden_draft_case()
        DatabaseSink("events").send([*data.build(UNTIL, EVENTS), *hidden_case.pop("documents")])
        documents = list(StoredEvent.objects.using("events").values_list("document", flat=True))
        User.objects.create(username="analyst", is_staff=True)
        site_states = {str(a.pk): (a.state, str(a.author_id)) for a in Article.objects.all()}
        moderator = Membership.objects.filter(role=Membership.Role.MODERATOR).select_related(
            "user", "community").order_by("pk").first()
    try:
        yield {"documents": documents, "events": data.flat_events(documents),
               "site_states": site_states, "moderator": (moderator.user.username,
                                                         moderator.community.slug),
               "hidden_case": hidden_case}
    finally:
        with django_db_blocker.unblock():
            StoredEvent.objects.using("events").all().delete()
            StoredEvent.objects.using("events").bulk_create(stash, batch_size=500)
            reset_rollups("events")
            Community.objects.all().delete()
            User.objects.exclude(pk__in=users_before).delete()


def hidden_draft_case() -> dict[str, Any]:
    """A member who asked 31 times for another member's hidden article (31 404s, as capture
    records them) and read a published one 3 times; both in a community they do not moderate."""
    hidden = Article.objects.exclude(state__in=PUBLIC_STATES).select_related("community").order_by(
        "pk").first()
    moderators = Membership.objects.filter(community=hidden.community,
                                           role=Membership.Role.MODERATOR).values("user")
    member = get_user_model().objects.exclude(pk=hidden.author_id).exclude(
        pk__in=moderators).filter(is_staff=False).order_by("pk").first()
    shown = Article.objects.filter(state="published").exclude(author=member).order_by("pk").first()
    at = UNTIL - timedelta(days=1, hours=-9)
    views = [data._view(at + timedelta(seconds=i), str(member.pk), str(hidden.pk),
                        hidden.community.slug, 404) for i in range(31)]
    views += [data._view(at + timedelta(minutes=5, seconds=i), str(member.pk), str(shown.pk),
                         shown.community.slug) for i in range(3)]
    return {"documents": [data.prepare(v)[1] for v in views], "member": member.username,
            "member_id": str(member.pk), "hidden": str(hidden.pk), "hidden_title": hidden.title,
            "shown": str(shown.pk), "shown_title": shown.title}


def load_history(engine: Any, history: dict[str, Any]) -> Any:
    """The history's documents in this suite's data stream on ``engine``."""
    engine.load_stream(DATA_STREAM, history["documents"], template="eventtrail-analyticstest",
                       priority=778)
    return engine


@pytest.fixture(scope="module")
def es_history(engine, history) -> Any:
    return load_history(engine, history)


@pytest.fixture(scope="module")
def es87_history(elasticsearch_engine, history) -> Any:
    return load_history(elasticsearch_engine, history)


@pytest.fixture(scope="module")
def pg_history(django_db_blocker, history) -> Iterator[str]:
    """The same events (and empty rollups) on a throwaway PostgreSQL, under their own alias."""
    with pg_fixture.events_alias(PG_ALIAS, history["documents"], django_db_blocker):
        yield PG_ALIAS


@pytest.fixture(scope="module", params=[
    "database",
    pytest.param("postgresql", marks=[
        pytest.mark.postgres, pytest.mark.django_db(databases=["default", "events", PG_ALIAS])]),
    pytest.param("elasticsearch", marks=pytest.mark.engine),
    pytest.param("elasticsearch-8.7", marks=pytest.mark.engine),
])
def backend(request, history) -> dict[str, Any]:
    """Module-wide, so a store's data (and the PostgreSQL alias) exist before any test's
    database access is set up."""
    if request.param == "postgresql":
        return {"name": "postgresql", "STORE": "database",
                "DATABASE_ALIAS": request.getfixturevalue("pg_history")}
    if request.param.startswith("elasticsearch"):
        # The store against OpenSearch 2.19 ("elasticsearch") and Elasticsearch 8.7.1.
        engine = request.getfixturevalue("es87_history" if request.param.endswith("8.7")
                                         else "es_history")
        return {"name": request.param, "STORE": "elasticsearch",
                "ELASTICSEARCH_HOSTS": [engine.url], "DATA_STREAM": DATA_STREAM,
                "ELASTICSEARCH_OPTIONS": {"node_class": engine.node_class}}
    return {"name": "database", "STORE": "database"}


@pytest.fixture
def store(backend, settings) -> str:
    config = {**settings.EVENTTRAIL, "API_THROTTLE_RATE": "100000/min",
              "MODERATED_COMMUNITIES": "community.event_types.moderated_communities",
              **{k: v for k, v in backend.items() if k != "name"}}
    settings.EVENTTRAIL = config
    cache.clear()
    return str(backend["name"])
