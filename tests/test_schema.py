"""The one schema: ECS types, producers, export and the rendered template."""
import json
from io import StringIO

from django.core.management import call_command
from eventtrail import schema
from eventtrail.ids import uuid7, uuid7_ms

# ECS 9 types of the ECS fields we use (from elastic/ecs generated/ecs/ecs_flat.yml).
ECS_TYPES = {
    "@timestamp": "date", "event.id": "keyword", "event.kind": "keyword",
    "event.category": "keyword", "event.type": "keyword", "event.action": "keyword",
    "event.outcome": "keyword", "event.duration": "long", "event.dataset": "keyword",
    "event.ingested": "date", "user.id": "keyword", "user.name": "keyword",
    "user.roles": "keyword", "source.ip": "ip", "url.path": "wildcard", "url.query": "keyword",
    "http.request.method": "keyword", "http.request.referrer": "keyword",
    "http.response.status_code": "long", "http.request.id": "keyword",
    "user_agent.original": "keyword", "service.name": "keyword",
    "service.environment": "keyword", "source.geo.location": "geo_point",
    "data_stream.type": "constant_keyword", "tags": "keyword", "message": "match_only_text",
}


def test_ecs_fields_have_their_ecs_types():
    for name, ecs_type in ECS_TYPES.items():
        assert schema.BY_NAME[name].type == ecs_type, name
    assert {f.name for f in schema.FIELDS if not f.ecs} == {
        f.name for f in schema.FIELDS if f.name.startswith("eventtrail.")}


def test_enrichment_and_pipeline_fields_are_marked():
    by = {p: {f.name for f in schema.FIELDS if f.producer is p} for p in schema.Producer}
    assert {"user_agent.name", "eventtrail.bot", "event.ingested", "source.geo.location"} <= by[
        schema.Producer.ENRICHMENT]
    assert {"tags", "data_stream.type"} <= by[schema.Producer.PIPELINE]


def test_mappings_cover_every_field_with_its_type():
    mapped = dict(schema.walk_mapping(schema.mappings()["properties"]))
    assert mapped == {f.name: f.type for f in schema.FIELDS}


def test_template_matches_the_stream_and_its_dead_letters():
    template = schema.index_template("logs-eventtrail-default")
    assert template["index_patterns"] == ["logs-eventtrail-*", "logs-eventtrail.*-*"]
    assert template["priority"] > 500
    assert template["template"]["settings"]["index"]["mode"] == "standard"


def test_errors_name_the_problem():
    doc = {"@timestamp": "yesterday", "event": {"id": "x", "action": "a.b", "kind": "event",
                                                "duration": "slow"}, "user": {"nick": "x"}}
    assert schema.errors(doc) == [
        "@timestamp: 'yesterday' is not a valid date",
        "event.duration: 'slow' is not a valid long",
        "user.nick: not in the event schema",
    ]


def test_management_command_exports_schema_and_template():
    out = StringIO()
    call_command("eventtrail_schema", stdout=out)
    exported = json.loads(out.getvalue())
    assert {f["name"] for f in exported["fields"]} == set(schema.BY_NAME)
    out = StringIO()
    call_command("eventtrail_schema", "--template", "--data-stream", "logs-shop-prod", stdout=out)
    assert json.loads(out.getvalue())["index_patterns"][0] == "logs-shop-*"


def test_uuid7_is_time_ordered_and_carries_its_time():
    ids = [uuid7() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == 2000
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids[:50])
    assert uuid7_ms(uuid7(ms=1_700_000_000_123)) == 1_700_000_000_123
