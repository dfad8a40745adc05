"""Smoke suite: the schema's template, a data stream and the queries we rely on, on a real engine."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch.dsl import A, Q, Search
from eventtrail import schema

from elasticsearch import BadRequestError, Elasticsearch, UnsupportedProductError, helpers
from tests.support.es_adapter import opensearch_template, plain_media_type

DATA_STREAM = "logs-eventtrail-default"
START = datetime(2025, 3, 1, tzinfo=UTC)
HOURS = 72
COUNT = 3000
ACTIONS = ["article.view", "article.edit", "community.view", "user.login", "search.query"]
COMMUNITIES = ["gardening", "chess", "astronomy", "knitting"]
PAGES = ["/", "/articles/", "/articles/{n}/", "/articles/{n}/edit/", "/search/"]


def uuid7(when: datetime, rng: random.Random) -> str:
    """A time-ordered UUIDv7, as capture makes them, from a seeded generator."""
    millis = int(when.timestamp() * 1000)
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64)
    value |= (0b10 << 62) | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def make_events(count: int = COUNT, seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        when = START + timedelta(milliseconds=rng.randrange(HOURS * 3600 * 1000))
        action = rng.choice(ACTIONS)
        path = rng.choice(PAGES).format(n=rng.randrange(1, 40))
        events.append(
            {
                "@timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "ecs": {"version": schema.ECS_VERSION},
                "message": f"{action} {path}",
                "event": {
                    "id": uuid7(when, rng),
                    "kind": "event",
                    "action": action,
                    "category": ["web"],
                    "type": ["access"],
                    "outcome": rng.choice(["success", "success", "success", "failure"]),
                    "dataset": schema.EVENT_DATASET,
                    "duration": rng.randrange(1_000_000, 90_000_000),
                },
                "user": {"id": str(rng.randrange(1, 401))},
                "source": {"ip": f"192.0.2.{rng.randrange(1, 255)}"},
                "url": {"path": path},
                "http": {"request": {"method": "GET"}, "response": {"status_code": 200}},
                "data_stream": {"type": "logs", "dataset": "eventtrail", "namespace": "default"},
                "eventtrail": {
                    "schema_version": schema.SCHEMA_VERSION,
                    "source": "server",
                    "community": {"slug": rng.choice(COMMUNITIES)},
                },
            }
        )
    return events


EVENTS = make_events()


def create_actions(events: list[dict]) -> list[dict]:
    # Data streams only take op_type create; event.id as _id makes a replay a 409, not a copy.
    return [
        {"_op_type": "create", "_index": DATA_STREAM, "_id": e["event"]["id"], "_source": e}
        for e in events
    ]


def count(client: Elasticsearch) -> int:
    return client.count(index=DATA_STREAM)["count"]


@pytest.fixture(scope="module")
def stream(engine):
    """The data stream made from the schema's template, holding EVENTS once."""
    engine.reset()
    template = opensearch_template(schema.index_template(DATA_STREAM, ilm_policy=None))
    engine.client.indices.put_index_template(name="eventtrail", **template)
    engine.client.indices.create_data_stream(name=DATA_STREAM)
    created, errors = helpers.bulk(engine.client, create_actions(EVENTS), raise_on_error=False)
    engine.client.indices.refresh(index=DATA_STREAM)
    yield engine, created, errors
    engine.reset()


def search(engine) -> Search:
    return Search(using=engine.client, index=DATA_STREAM)


# --- without the engine: the generator and the adapter's pure parts ----------------------------


def test_generated_events_are_valid_and_unique():
    assert [schema.errors(e) for e in EVENTS if schema.errors(e)] == []
    assert len({e["event"]["id"] for e in EVENTS}) == COUNT
    assert make_events() == EVENTS


def test_compatibility_media_types_become_plain():
    compat = "application/vnd.elasticsearch+{}; compatible-with=9"
    assert plain_media_type(compat.format("json")) == "application/json"
    assert plain_media_type(compat.format("x-ndjson")) == "application/x-ndjson"
    assert plain_media_type("application/json") == "application/json"


def test_opensearch_template_drops_only_the_listed_keys():
    es = schema.index_template(DATA_STREAM, ilm_policy="eventtrail")
    es["template"]["lifecycle"] = {"data_retention": "30d"}
    es["template"]["mappings"]["subobjects"] = True
    adapted = opensearch_template(es)
    assert adapted["template"]["settings"] == {"index.number_of_replicas": 0}
    assert set(adapted["template"]) == {"settings", "mappings"}
    assert "subobjects" not in adapted["template"]["mappings"]
    props = adapted["template"]["mappings"]["properties"]
    assert props["data_stream"]["properties"]["type"] == {"type": "keyword"}
    assert props["url"]["properties"]["path"] == {"type": "wildcard", "doc_values": True}
    assert (
        props["user"]["properties"]["name"]
        == es["template"]["mappings"]["properties"]["user"]["properties"]["name"]
    )
    for key in ("index_patterns", "data_stream", "priority", "_meta"):
        assert adapted[key] == es[key]
    assert es["template"]["settings"]["index"]["mode"] == "standard"  # the input is untouched


# --- the engine and the adapter -------------------------------------------------------------------


def test_the_plain_client_refuses_the_engine_without_the_adapter(engine):
    with pytest.raises(UnsupportedProductError):
        Elasticsearch(engine.url).info()
    assert engine.client.info()["version"]["distribution"] == "opensearch"


def test_the_engine_has_the_modules_of_a_full_distribution(engine):
    (node,) = engine.client.nodes.info(metric="plugins")["nodes"].values()
    assert {m["name"] for m in node["modules"]} == {
        "transport-netty4", "lang-painless", "analysis-common", "mapper-extras",
        "aggs-matrix-stats", "ingest-common", "ingest-user-agent", "reindex",
    }  # fmt: skip
    assert node["plugins"] == []  # hence no security plugin: plain HTTP


def test_the_unadapted_template_is_rejected(engine):
    # The difference opensearch_template() exists for: if this ever passes, revisit it.
    es = schema.index_template("logs-probe-default", ilm_policy=None)
    es["index_patterns"] = ["logs-probe-*"]
    with pytest.raises(BadRequestError, match="index.mode"):
        engine.client.indices.put_index_template(name="probe", **es)


def test_the_template_makes_a_data_stream(stream):
    engine, _, _ = stream
    info = engine.client.indices.get_data_stream(name=DATA_STREAM)["data_streams"][0]
    assert info["template"] == "eventtrail"
    assert info["timestamp_field"]["name"] == "@timestamp"
    mapping = engine.client.indices.get_mapping(index=DATA_STREAM)
    (backing,) = mapping.body.values()
    fields = dict(schema.walk_mapping(backing["mappings"]["properties"]))
    assert set(fields) == {f.name for f in schema.FIELDS}


def test_bulk_create_indexes_every_event_with_its_id(stream):
    engine, created, errors = stream
    assert (created, errors) == (COUNT, [])
    assert count(engine.client) == COUNT
    some = EVENTS[123]
    hit = engine.client.search(index=DATA_STREAM, query={"ids": {"values": [some["event"]["id"]]}})[
        "hits"
    ]["hits"]
    assert [h["_source"] for h in hit] == [some]


def test_a_second_bulk_of_the_same_events_adds_nothing(stream):
    engine, _, _ = stream
    created, errors = helpers.bulk(engine.client, create_actions(EVENTS), raise_on_error=False)
    engine.client.indices.refresh(index=DATA_STREAM)
    assert created == 0
    assert Counter(e["create"]["status"] for e in errors) == {409: COUNT}
    assert count(engine.client) == COUNT


def test_filtered_search_after_pages_through_every_hit(stream):
    engine, _, _ = stream
    since, until = START + timedelta(hours=6), START + timedelta(hours=54)
    wanted = sorted(
        (e["@timestamp"], e["event"]["id"])
        for e in EVENTS
        if e["eventtrail"]["community"]["slug"] == "gardening"
        and e["event"]["action"] in {"article.view", "article.edit"}
        and since <= datetime.fromisoformat(e["@timestamp"]) < until
    )
    query = (
        search(engine)
        .filter(Q("term", eventtrail__community__slug="gardening"))
        .filter(Q("terms", event__action=["article.view", "article.edit"]))
        .filter(Q("range", **{"@timestamp": {"gte": since.isoformat(), "lt": until.isoformat()}}))
        .sort("@timestamp", "event.id")
        .extra(size=50, track_total_hits=True)
    )
    seen, pages, after = [], 0, None
    while True:
        page = query.extra(search_after=after) if after else query
        response = page.execute()
        if not response.hits:
            break
        pages += 1
        seen += [(h["@timestamp"], h.event.id) for h in response.hits]
        after = list(response.hits[-1].meta.sort)
    assert response.hits.total.value == len(wanted)
    assert seen == wanted
    assert pages == -(-len(wanted) // 50) > 2


def test_terms_aggregation_counts_actions(stream):
    engine, _, _ = stream
    s = search(engine).filter(Q("term", eventtrail__community__slug="chess")).extra(size=0)
    s.aggs.bucket("actions", A("terms", field="event.action", size=len(ACTIONS)))
    buckets = s.execute().aggregations.actions.buckets
    expected = Counter(
        e["event"]["action"] for e in EVENTS if e["eventtrail"]["community"]["slug"] == "chess"
    )
    assert {b.key: b.doc_count for b in buckets} == expected


def test_date_histogram_counts_events_per_six_hours(stream):
    engine, _, _ = stream
    s = search(engine).extra(size=0)
    s.aggs.bucket("per_6h", A("date_histogram", field="@timestamp", fixed_interval="6h"))
    buckets = s.execute().aggregations.per_6h.buckets
    step = 6 * 3600 * 1000
    expected = Counter(
        int(datetime.fromisoformat(e["@timestamp"]).timestamp() * 1000) // step * step
        for e in EVENTS
    )
    assert {b.key: b.doc_count for b in buckets} == expected
    assert len(buckets) == HOURS // 6


def test_cardinality_counts_distinct_users_per_community(stream):
    engine, _, _ = stream
    s = search(engine).extra(size=0)
    # Below precision_threshold the count is exact in practice; 400 users are far below it.
    s.aggs.metric("users", A("cardinality", field="user.id", precision_threshold=3000))
    s.aggs.bucket("communities", "terms", field="eventtrail.community.slug").metric(
        "users", "cardinality", field="user.id", precision_threshold=3000
    )
    result = s.execute().aggregations
    users = defaultdict(set)
    for e in EVENTS:
        users[e["eventtrail"]["community"]["slug"]].add(e["user"]["id"])
    assert result.users.value == len({e["user"]["id"] for e in EVENTS})
    assert {b.key: b.users.value for b in result.communities.buckets} == {
        slug: len(ids) for slug, ids in users.items()
    }


def test_wildcard_url_path_filters_and_aggregates(stream):
    engine, _, _ = stream
    s = search(engine).filter(Q("wildcard", url__path="/articles/*/edit/")).extra(size=0)
    s.aggs.bucket("paths", A("terms", field="url.path", size=100))
    response = s.execute()
    expected = Counter(
        e["url"]["path"]
        for e in EVENTS
        if e["url"]["path"].startswith("/articles/") and e["url"]["path"].endswith("/edit/")
    )
    assert response.hits.total.value == sum(expected.values())
    assert {b.key: b.doc_count for b in response.aggregations.paths.buckets} == expected


# --- Elasticsearch 8.7.1 beside OpenSearch ------------------------------------------------------


def test_elasticsearch_starts_and_speaks_8_through_its_adapter(elasticsearch_engine):
    es = elasticsearch_engine
    assert es.client.info()["version"]["number"] == "8.7.1"
    with pytest.raises(BadRequestError, match="compatible-with|version 8 or 7"):
        Elasticsearch(es.url).info()  # the 9.x client unadapted: 'compatible-with=9' refused
    modules = {m["name"] for n in es.client.nodes.info(metric="plugins")["nodes"].values()
               for m in n["modules"]}
    assert "mapper-extras" not in modules and "x-pack-ilm" not in modules


def test_elasticsearch_refuses_the_unadapted_template_for_the_listed_reasons(elasticsearch_engine):
    from tests.support.es_adapter import ES87_MISSING_TYPES

    es = schema.index_template("logs-probe-default", ilm_policy=None)
    es["index_patterns"] = ["logs-probe-*"]
    with pytest.raises(BadRequestError) as refused:
        elasticsearch_engine.client.indices.put_index_template(name="probe", **es)
    reason = json.dumps(refused.value.body)
    assert re.search(r"No handler for type \[(" + "|".join(ES87_MISSING_TYPES) + r")\]", reason)


def test_elasticsearch_takes_the_adapted_template_and_answers_the_queries_we_make(
        elasticsearch_engine):
    es = elasticsearch_engine
    name = "logs-eventtrail-es87smoke"
    template = es.template(schema.index_template(name, ilm_policy=None, priority=701))
    template["index_patterns"] = [name]
    es.client.indices.put_index_template(name="es87smoke", **template)
    try:
        created, errors = helpers.bulk(es.client, [{**a, "_index": name} for a in
                                                   create_actions(EVENTS)], raise_on_error=False)
        es.client.indices.refresh(index=name)
        assert (created, errors) == (len(EVENTS), [])
        assert es.client.count(index=name)["count"] == len(EVENTS)
        by_action = Search(using=es.client, index=name).extra(size=0)
        by_action.aggs.bucket("a", "terms", field="event.action", size=10)
        got = {b.key: b.doc_count for b in by_action.execute().aggregations.a.buckets}
        assert got == dict(Counter(e["event"]["action"] for e in EVENTS))
    finally:
        es.client.options(ignore_status=404).indices.delete(index=name)
        es.client.indices.delete_index_template(name="es87smoke")
