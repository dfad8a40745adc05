"""Session fixtures for the real engines, each started when a test first asks for it:
`engine` (OpenSearch 2.19) and `elasticsearch_engine` (Elasticsearch 8.7.1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eventtrail import schema

from elasticsearch import Elasticsearch
from tests.support import es_adapter
from tests.support.engine import ELASTICSEARCH, OPENSEARCH, Engine, EngineError, Flavour

# Per engine: the client's node class (the adapter), and the template adapter.
ADAPTERS: dict[str, tuple[type, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    OPENSEARCH.name: (es_adapter.OpenSearchCompatNode, es_adapter.opensearch_template),
    ELASTICSEARCH.name: (es_adapter.Elasticsearch8Node, es_adapter.elasticsearch8_template),
}
ENGINE_FIXTURES = ("engine", "elasticsearch_engine")


@dataclass
class RunningEngine:
    """What a test gets: the node's URL, a ready client, the engine's adapters, and a way to
    wipe what tests made."""

    url: str
    client: Elasticsearch
    node: Engine

    @property
    def name(self) -> str:
        return self.node.flavour.name

    @property
    def node_class(self) -> type:
        """For ELASTICSEARCH_OPTIONS: how the store's own client reaches this engine."""
        return ADAPTERS[self.name][0]

    def template(self, template: dict[str, Any]) -> dict[str, Any]:
        """Our Elasticsearch 9 template as this engine takes it."""
        return ADAPTERS[self.name][1](template)

    def load_stream(self, name: str, documents: list[dict[str, Any]], *, template: str,
                    priority: int) -> None:
        """(Re)create the data stream ``name`` holding ``documents`` (a plain index on
        Elasticsearch 8.7.1, which has no data stream API), under a template of its own; other
        tests' templates and streams are left as they are."""
        body = self.template(schema.index_template(name, ilm_policy=None, priority=priority))
        body["index_patterns"] = [name]
        self.client.indices.put_index_template(name=template, **body)
        self.client.options(ignore_status=(404, 405)).indices.delete_data_stream(name=name)
        self.client.options(ignore_status=404).indices.delete(index=name)
        operations: list[dict[str, Any]] = []
        for doc in documents:
            operations.append({"create": {"_index": name, "_id": doc["event"]["id"]}})
            operations.append(doc)
        result = self.client.bulk(operations=operations, refresh=True)
        assert not result["errors"]

    def reset(self) -> None:
        """Delete every data stream, index and composable template that tests created."""
        # Elasticsearch 8.7.1 here has no data stream API (405); its "streams" are indices.
        self.client.options(ignore_status=405).indices.delete_data_stream(name="*")
        self.client.indices.delete(
            index="*", expand_wildcards="open,closed", ignore_unavailable=True
        )
        templates = self.client.indices.get_index_template().get("index_templates", [])
        for template in templates:
            self.client.indices.delete_index_template(name=template["name"])


def pytest_collection_modifyitems(items):
    """Mark every test that uses the engine, directly or through a fixture, with ``engine``."""
    for item in items:
        if set(ENGINE_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)


def _running(flavour: Flavour):
    node = Engine(flavour=flavour)
    try:
        node.start()
    except EngineError as exc:
        pytest.fail(f"{flavour.name} could not start: {exc}", pytrace=False)
    client = es_adapter.client(node.url, node_class=ADAPTERS[flavour.name][0])
    try:
        yield RunningEngine(url=node.url, client=client, node=node)
    finally:
        client.close()
        node.stop()


@pytest.fixture(scope="session")
def engine():
    """A running OpenSearch for the whole session; a test that needs it fails if it cannot
    start. It never skips, in CI (CI=true) or not: a missing engine must show as a failure."""
    yield from _running(OPENSEARCH)


@pytest.fixture(scope="session")
def elasticsearch_engine():
    """A running Elasticsearch 8.7.1 for the whole session, under the same rules."""
    yield from _running(ELASTICSEARCH)
