"""The session fixture `engine`: one real OpenSearch, started when a test first asks for it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from elasticsearch import Elasticsearch
from tests.support import es_adapter
from tests.support.engine import Engine, EngineError


@dataclass
class RunningEngine:
    """What a test gets: the node's URL, a ready client, and a way to wipe what tests made."""

    url: str
    client: Elasticsearch
    node: Engine

    def reset(self) -> None:
        """Delete every data stream, index and composable template that tests created."""
        self.client.indices.delete_data_stream(name="*")
        self.client.indices.delete(
            index="*", expand_wildcards="open,closed", ignore_unavailable=True
        )
        templates = self.client.indices.get_index_template().get("index_templates", [])
        for template in templates:
            self.client.indices.delete_index_template(name=template["name"])


def pytest_collection_modifyitems(items):
    """Mark every test that uses the engine, directly or through a fixture, with ``engine``."""
    for item in items:
        if "engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def engine():
    """A running engine for the whole session; a test that needs it fails if it cannot start.

    It never skips, in CI (CI=true) or not: a missing engine must show as a failure.
    """
    node = Engine()
    try:
        node.start()
    except EngineError as exc:
        pytest.fail(f"the search engine could not start: {exc}", pytrace=False)
    client = es_adapter.client(node.url)
    try:
        yield RunningEngine(url=node.url, client=client, node=node)
    finally:
        client.close()
        node.stop()
