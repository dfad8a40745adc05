"""Module fixtures for the analytics tests: the seeded site, its history, each store."""
from __future__ import annotations

from typing import Any

import eventtrail
import pytest
from community.activity import default_until
from community.models import Article, Community, Membership
from community.seed import seed
from django.contrib.auth import get_user_model
from django.core.cache import cache
from eventtrail import schema
from eventtrail.delivery.sinks import DatabaseSink
from eventtrail.models import StoredEvent
from eventtrail.stores.database import reset_rollups

from tests import analytics_data as data
from tests.es_adapter import OpenSearchCompatNode, opensearch_template

DATA_STREAM = "logs-eventtrail-analyticstest"
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
        DatabaseSink("events").send(data.build(UNTIL, EVENTS))
        documents = list(StoredEvent.objects.using("events").values_list("document", flat=True))
        User.objects.create(username="analyst", is_staff=True)
        site_states = {str(a.pk): (a.state, str(a.author_id)) for a in Article.objects.all()}
        moderator = Membership.objects.filter(role=Membership.Role.MODERATOR).select_related(
            "user", "community").order_by("pk").first()
    try:
        yield {"documents": documents, "events": data.flat_events(documents),
               "site_states": site_states, "moderator": (moderator.user.username,
                                                         moderator.community.slug)}
    finally:
        with django_db_blocker.unblock():
            StoredEvent.objects.using("events").all().delete()
            StoredEvent.objects.using("events").bulk_create(stash, batch_size=500)
            reset_rollups("events")
            Community.objects.all().delete()
            User.objects.exclude(pk__in=users_before).delete()


@pytest.fixture(scope="module")
def es_history(engine, history) -> str:
    client = engine.client
    template = opensearch_template(schema.index_template(DATA_STREAM, ilm_policy=None,
                                                         priority=778))
    template["index_patterns"] = [DATA_STREAM]
    client.indices.put_index_template(name="eventtrail-analyticstest", **template)
    client.options(ignore_status=404).indices.delete_data_stream(name=DATA_STREAM)
    operations: list[dict[str, Any]] = []
    for doc in history["documents"]:
        operations.append({"create": {"_index": DATA_STREAM, "_id": doc["event"]["id"]}})
        operations.append(doc)
    result = client.bulk(operations=operations, refresh=True)
    assert not result["errors"]
    return engine.url


@pytest.fixture(params=["database", "elasticsearch"])
def store(request, settings, history) -> str:
    config = {**settings.EVENTTRAIL, "STORE": request.param, "API_THROTTLE_RATE": "100000/min",
              "MODERATED_COMMUNITIES": "community.event_types.moderated_communities"}
    if request.param == "elasticsearch":
        url = request.getfixturevalue("es_history")
        config.update(ELASTICSEARCH_HOSTS=[url], DATA_STREAM=DATA_STREAM,
                      ELASTICSEARCH_OPTIONS={"node_class": OpenSearchCompatNode})
    settings.EVENTTRAIL = config
    cache.clear()
    return request.param


