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


class _MediaTypeNode(Urllib3HttpNode):
    """An HTTP node that rewrites the Accept and Content-Type the 9.x client sends."""

    def media_type(self, value: str) -> str:
        """The header value to send instead of ``value``; each node below says how."""
        return value

    def perform_request(  # type: ignore[override]
        self, method: str, target: str, body: bytes | None = None,
        headers: HttpHeaders | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        merged = HttpHeaders(self._headers)
        merged.update(headers or {})
        for name in ("accept", "content-type"):
            if name in merged:
                merged[name] = self.media_type(merged[name])
        return super().perform_request(method, target, body=body, headers=merged, **kwargs)


class OpenSearchCompatNode(_MediaTypeNode):
    """An HTTP node that speaks plain JSON to OpenSearch and vouches for it to the client.

    The client refuses any 2xx answer without ``X-Elastic-Product: Elasticsearch``; the node adds
    it. Nothing else changes: bodies, paths, errors and warnings reach the client as sent.
    """

    def media_type(self, value: str) -> str:
        return plain_media_type(value)

    def perform_request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        response = super().perform_request(*args, **kwargs)
        marked = HttpHeaders(response.meta.headers)
        marked["x-elastic-product"] = "Elasticsearch"
        return response._replace(meta=dataclasses.replace(response.meta, headers=marked))


def client(url: str, node_class: type = OpenSearchCompatNode, **kwargs: Any) -> Elasticsearch:
    """An ``Elasticsearch`` client for a local engine, through its adapter node."""
    kwargs.setdefault("request_timeout", 30)
    return Elasticsearch(url, node_class=node_class, **kwargs)


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
    out, body = _without(template, ES_ONLY_TEMPLATE_KEYS, ES_ONLY_SETTINGS)
    mappings = body.get("mappings", {})
    for key in ES_ONLY_MAPPING_KEYS:
        mappings.pop(key, None)
    _adapt_fields(mappings.get("properties", {}))
    return out


def _without(template: dict[str, Any], keys: dict[str, str], setting_prefixes: dict[str, str]
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy of ``template`` without ``keys`` (at the top or in its ``template``) and with its
    settings flat, less those under ``setting_prefixes``; and the copy's ``template`` body."""
    out = copy.deepcopy(template)
    body = out.get("template", {})
    for key in keys:
        body.pop(key, None)
        out.pop(key, None)
    if "settings" in body:
        body["settings"] = {
            name: value for name, value in _flat_settings(body["settings"]).items()
            if not any(name.startswith(prefix) for prefix in setting_prefixes)
        }
    return out, body


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


# --- Elasticsearch 8.7.1 -------------------------------------------------------------------------
# The one place that says what the test engine Elasticsearch 8.7.1 (the integ-test distribution
# on Maven Central) lacks that our Elasticsearch 9 template uses, and what stands in for it. Each
# was checked against the running node ("No handler for type", "unknown setting"). Data streams,
# composable templates, index.mode and subobjects it has, so they pass through.
ES87_MISSING_TYPES = {
    "constant_keyword": ("keyword", "x-pack-constant-keyword is not in the distribution; a "
                         "keyword field answers the same term queries and aggregations"),
    "wildcard": ("keyword", "x-pack-wildcard is not in it; a keyword field answers the term, "
                 "prefix and wildcard queries our store makes, with doc values for sorting"),
    "match_only_text": ("text", "the mapper-extras module is not in it; text indexes the same "
                        "terms (and positions, which match_only_text leaves out)"),
}
ES87_MISSING_SETTINGS = {
    "index.lifecycle.": "x-pack-ilm is not in it ('unknown setting')",
}
ES87_MISSING_TEMPLATE_KEYS = {
    "data_stream": "the data stream REST API is x-pack's, not in it (405 on GET, PUT and DELETE "
    "/_data_stream/NAME): the name becomes a plain index, which the store searches and the "
    "tests load with the same create operations",
    "lifecycle": "the data stream lifecycle came in 8.11 ('unknown field')",
    "data_stream_options": "the failure store came in 8.15 ('unknown field')",
}


class Elasticsearch8Node(_MediaTypeNode):
    """The 9.x client asks for ``compatible-with=9``, which 8.7.1 refuses ("Accept version must
    be either version 8 or 7"): ask for 8. Nothing else changes."""

    def media_type(self, value: str) -> str:
        return re.sub(r"compatible-with=\d+", "compatible-with=8", value)


def elasticsearch8_template(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of an Elasticsearch 9 composable index template that 8.7.1 accepts: the keys and
    types in the ES87_* tables replaced or removed, anything else unchanged."""
    out, body = _without(template, ES87_MISSING_TEMPLATE_KEYS, ES87_MISSING_SETTINGS)
    _es87_fields(body.get("mappings", {}).get("properties", {}))
    return out


def _es87_fields(properties: dict[str, Any]) -> None:
    for spec in properties.values():
        if spec.get("type") in ES87_MISSING_TYPES:
            spec["type"] = ES87_MISSING_TYPES[spec["type"]][0]
        _es87_fields(spec.get("properties", {}))
        _es87_fields(spec.get("fields", {}))
