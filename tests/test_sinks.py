"""The jsonl and database sinks: one document per event, idempotent, enriched like the pipeline."""
import json

import pytest
from django.test import override_settings
from eventtrail import schema
from eventtrail.build import prepare
from eventtrail.capture import draft_for
from eventtrail.delivery import make_sink
from eventtrail.delivery.sinks import DatabaseSink, JsonLinesSink
from eventtrail.models import StoredEvent

BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def docs(n=5, ua=FIREFOX):
    return [prepare(draft_for("page.view", {"url.path": f"/x/{i}", "user_agent.original": ua,
                                            "user.id": "7", "http.response.status_code": 200}))[1]
            for i in range(n)]


def test_jsonl_writes_exactly_the_documents(tmp_path):
    sink = JsonLinesSink(tmp_path / "out.jsonl")
    batch = docs()
    sink.send(batch)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(d) for d in batch]


@pytest.mark.django_db(databases=["default", "events"])
def test_database_sink_is_idempotent_and_enriches():
    sink = DatabaseSink()
    batch = docs(3) + docs(2, ua=BOT)
    sink.send(batch)
    sink.send(batch)
    assert StoredEvent.objects.count() == 5
    human = StoredEvent.objects.filter(is_bot=False).first()
    assert (human.ua_name, human.os_name) == ("Firefox", "Windows")
    doc = human.document
    assert schema.errors(doc) == []
    assert doc["user_agent"]["version"] == "133.0" and doc["event"]["ingested"]
    bot = StoredEvent.objects.filter(is_bot=True).first()
    assert bot.document["tags"] == ["bot"] and bot.document["user_agent"]["device"]["name"] == "Spider"
    assert bot.user_id == "7" and bot.url_path.startswith("/x/")


def test_a_bad_sink_path_names_the_setting():
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(EVENTTRAIL={"SINK": "no.such.Sink"}), \
            pytest.raises(ImproperlyConfigured, match=r"EVENTTRAIL\['SINK'\]"):
        make_sink()
