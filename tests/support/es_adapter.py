"""Test-only bridge so the real `elasticsearch` 9.x client and templates work against OpenSearch."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from elastic_transport import HttpHeaders, Urllib3HttpNode

from elasticsearch import Elasticsearch

# The 9.x client asks for e.g. "application/vnd.elasticsearch+json; compatible-with=9";
# OpenSearch answers such a Content-Type or Accept with 406 Not Acceptable.
_COMPAT_MEDIA_TYPE = re.compile(
    r"application/vnd\.elasticsearch\+([\w.-]+)\s*;\s*compatible-with=\d+"
)


def plain_media_type(value: str) -> str:
    """'application/vnd.elasticsearch+x-ndjson; compatible-with=9' -> 'application/x-ndjson'."""
    return _COMPAT_MEDIA_TYPE.sub(r"application/\1", value)


class OpenSearchCompatNode(Urllib3HttpNode):
    """An HTTP node that speaks plain JSON to OpenSearch and vouches for it to the client.

    The client refuses any 2xx answer without ``X-Elastic-Product: Elasticsearch``; the node adds
    it. Nothing else changes: bodies, paths, errors and warnings reach the client as sent.
    """

    def perform_request(  # type: ignore[override]
        self, method: str, target: str, body: bytes | None = None,
        headers: HttpHeaders | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        merged = HttpHeaders(self._headers)
        merged.update(headers or {})
        for name in ("accept", "content-type"):
            if name in merged:
                merged[name] = plain_media_type(merged[name])
        response = super().perform_request(method, target, body=body, headers=merged, **kwargs)
        marked = HttpHeaders(response.meta.headers)
        marked["x-elastic-product"] = "Elasticsearch"
        return response._replace(meta=dataclasses.replace(response.meta, headers=marked))


def client(url: str, **kwargs: Any) -> Elasticsearch:
    """An ``Elasticsearch`` client for the local OpenSearch, through the adapter node."""
    kwargs.setdefault("request_timeout", 30)
    return Elasticsearch(url, node_class=OpenSearchCompatNode, **kwargs)


# Elasticsearch 9 template keys that OpenSearch 2.19 rejects (each checked against the engine),
# and why dropping them is safe for what the tests can show.
ES_ONLY_SETTINGS = {
    "index.mode": "OpenSearch has no index modes ('unknown setting'); its one mode is what "
    "Elasticsearch calls 'standard', the mode our template asks for",
    "index.lifecycle.": "names an ILM policy ('unknown setting'); OpenSearch has ISM, whose "
    "policies attach through their own ism_template, not through an index setting",
}
ES_ONLY_TEMPLATE_KEYS = {
    "lifecycle": "the data stream lifecycle (retention) is Elasticsearch-only ('unknown field')",
    "data_stream_options": "the failure store is Elasticsearch-only ('unknown field')",
}
ES_ONLY_MAPPING_KEYS = {
    "subobjects": "OpenSearch rejects the parameter, at the top and on objects; with nested "
    "'properties', as our schema writes them, the documents map the same without it",
}


def opensearch_template(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of an Elasticsearch 9 composable index template that OpenSearch 2.19 accepts.

    Removes the keys in ``ES_ONLY_SETTINGS``, ``ES_ONLY_TEMPLATE_KEYS`` and
    ``ES_ONLY_MAPPING_KEYS`` (why: in those tables), writes the settings in flat form, and
    changes two field types:
    - ``constant_keyword`` without a ``value`` becomes ``keyword``: Elasticsearch takes the value
      from the first document, OpenSearch demands it in the mapping. Term queries and terms
      aggregations answer the same on both.
    - ``wildcard`` gets ``doc_values: true``: Elasticsearch's wildcard field always has them,
      OpenSearch's has none by default, and then cannot sort or aggregate on it.
    Anything else passes through unchanged, so a new Elasticsearch-only key fails loudly.
    """
    out = copy.deepcopy(template)
    body = out.get("template", {})
    for key in ES_ONLY_TEMPLATE_KEYS:
        body.pop(key, None)
    if "settings" in body:
        body["settings"] = {
            name: value
            for name, value in _flat_settings(body["settings"]).items()
            if not any(name.startswith(prefix) for prefix in ES_ONLY_SETTINGS)
        }
    mappings = body.get("mappings", {})
    for key in ES_ONLY_MAPPING_KEYS:
        mappings.pop(key, None)
    _adapt_fields(mappings.get("properties", {}))
    return out


def _flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'index': {'mode': 'x'}} and {'mode': 'x'} both -> {'index.mode': 'x'}."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_settings(value, f"{name}."))
        else:
            flat[name if name.startswith("index.") else f"index.{name}"] = value
    return flat


def _adapt_fields(properties: dict[str, Any]) -> None:
    for spec in properties.values():
        for key in ES_ONLY_MAPPING_KEYS:
            spec.pop(key, None)
        if spec.get("type") == "constant_keyword" and "value" not in spec:
            spec["type"] = "keyword"
        if spec.get("type") == "wildcard":
            spec["doc_values"] = True
        _adapt_fields(spec.get("properties", {}))
        _adapt_fields(spec.get("fields", {}))
