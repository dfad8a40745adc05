"""The one event schema: every field an event may carry, its ECS type and who produces it."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = "1"
ECS_VERSION = "9.0.0"
EVENT_DATASET = "eventtrail.events"
DEADLETTER_DATASET = "eventtrail.deadletter"


class Producer(StrEnum):
    """Who puts a field on the event."""

    CAPTURE = "capture"  # the middleware, a signal receiver or the browser collector
    ENRICHMENT = "enrichment"  # the Logstash pipeline, or the embedded store's own enrichment
    PIPELINE = "pipeline"  # the Logstash pipeline only


@dataclass(frozen=True)
class Field:
    """One dotted field of the event document."""

    name: str
    type: str  # the Elasticsearch/ECS field type
    producer: Producer
    description: str
    array: bool = False
    text: bool = False  # adds the ECS ``.text`` multi-field (match_only_text)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ecs(self) -> bool:
        return not self.name.startswith("eventtrail.")

    @property
    def path(self) -> tuple[str, ...]:
        return (self.name,) if self.name == "@timestamp" else tuple(self.name.split("."))


C, E, P = Producer.CAPTURE, Producer.ENRICHMENT, Producer.PIPELINE

FIELDS: tuple[Field, ...] = (
    # --- ECS: base, event ---------------------------------------------------------
    Field("@timestamp", "date", C, "When the user did it (UTC)."),
    Field("ecs.version", "keyword", C, "ECS version the event conforms to."),
    Field("message", "match_only_text", C, "One human-readable line describing the event."),
    Field("tags", "keyword", P, "Pipeline tags, e.g. bot, _eventtrail_invalid.", array=True),
    Field("event.id", "keyword", C, "Time-ordered UUIDv7 made at capture; the document id."),
    Field("event.kind", "keyword", C, "Always 'event'."),
    Field("event.category", "keyword", C, "ECS categories, e.g. web, authentication.", array=True),
    Field("event.type", "keyword", C, "ECS types, e.g. access, start, change.", array=True),
    Field("event.action", "keyword", C, "The registered event type, e.g. article.view."),
    Field("event.outcome", "keyword", C, "success, failure or unknown."),
    Field("event.duration", "long", C, "Time the server took, in nanoseconds."),
    Field("event.dataset", "keyword", C, "Always 'eventtrail.events'."),
    Field("event.ingested", "date", E, "When the event reached the store."),
    # --- ECS: who --------------------------------------------------------------------
    Field("user.id", "keyword", C, "The user's id, or its keyed hash when pseudonymised."),
    Field("user.name", "keyword", C, "The username (omitted when pseudonymised).", text=True),
    Field("user.roles", "keyword", C, "Roles at the time: staff, superuser, moderator.", array=True),
    Field("source.ip", "ip", C, "Client IP, anonymised when configured."),
    Field("source.geo.country_iso_code", "keyword", E, "Country of the client IP."),
    Field("source.geo.country_name", "keyword", E, "Country name of the client IP."),
    Field("source.geo.region_name", "keyword", E, "Region of the client IP."),
    Field("source.geo.city_name", "keyword", E, "City of the client IP."),
    Field("source.geo.location", "geo_point", E, "Location of the client IP."),
    # --- ECS: what was asked ----------------------------------------------------------
    Field("url.path", "wildcard", C, "Request path."),
    Field("url.query", "keyword", C, "Query string with secrets scrubbed."),
    Field("http.request.id", "keyword", C, "Request id, from X-Request-ID or made at capture."),
    Field("http.request.method", "keyword", C, "HTTP method."),
    Field("http.request.referrer", "keyword", C, "Referer header, with secrets scrubbed."),
    Field("http.response.status_code", "long", C, "HTTP status code of the response."),
    Field("user_agent.original", "keyword", C, "The User-Agent header.", text=True),
    Field("user_agent.name", "keyword", E, "Browser or client name."),
    Field("user_agent.version", "keyword", E, "Browser or client version."),
    Field("user_agent.os.name", "keyword", E, "Operating system name.", text=True),
    Field("user_agent.os.version", "keyword", E, "Operating system version."),
    Field("user_agent.os.full", "keyword", E, "Operating system name and version.", text=True),
    Field("user_agent.device.name", "keyword", E, "Device name."),
    Field("service.name", "keyword", C, "The host site's service name."),
    Field("service.environment", "keyword", C, "production, staging, development..."),
    Field("data_stream.type", "constant_keyword", P, "Always 'logs'."),
    Field("data_stream.dataset", "constant_keyword", P, "Dataset part of the data stream name."),
    Field("data_stream.namespace", "constant_keyword", P, "Namespace part of the data stream name."),
    # --- eventtrail.*: domain fields ---------------------------------------------------
    Field("eventtrail.schema_version", "keyword", C, "Version of this schema."),
    Field("eventtrail.source", "keyword", C, "Where the event came from: server, signal or browser."),
    Field("eventtrail.session.hash", "keyword", C, "Keyed hash of the session key, never the key."),
    Field("eventtrail.community.id", "keyword", C, "Id of the community the event happened in."),
    Field("eventtrail.community.slug", "keyword", C, "Slug of that community."),
    Field("eventtrail.target.type", "keyword", C, "Type of the object acted on, e.g. article."),
    Field("eventtrail.target.id", "keyword", C, "Id of the object acted on."),
    Field("eventtrail.target.state", "keyword", C, "State of the object after the event."),
    Field("eventtrail.target.previous_state", "keyword", C, "State before a transition."),
    Field("eventtrail.search.query", "keyword", C, "Search terms, for search events."),
    Field("eventtrail.bot", "boolean", E, "True when the user agent is a bot or crawler."),
    Field("eventtrail.browser.scroll_depth", "long", C, "Scroll depth reached, in percent."),
    Field("eventtrail.browser.viewport.width", "long", C, "Viewport width in CSS pixels."),
    Field("eventtrail.browser.viewport.height", "long", C, "Viewport height in CSS pixels."),
    Field("eventtrail.browser.visibility", "keyword", C, "hidden or visible."),
    Field("eventtrail.browser.time_on_page", "long", C, "Milliseconds the page was visible."),
    Field("eventtrail.video.id", "keyword", C, "The video's id, from its data attribute."),
    Field("eventtrail.video.position", "float", C, "Playback position in seconds."),
    Field("eventtrail.video.duration", "float", C, "Video length in seconds."),
    Field("eventtrail.video.progress", "long", C, "Quartile reached: 25, 50, 75 or 100."),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def get(name: str) -> Field:
    return BY_NAME[name]


# --- documents are nested dicts in ECS shape ------------------------------------------------


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'event': {'id': 1}} -> {'event.id': 1}. '@timestamp' stays one key."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name not in BY_NAME:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


_PATHS: dict[str, tuple[str, ...]] = {}


def _path(name: str) -> tuple[str, ...]:
    parts = _PATHS.get(name)
    if parts is None:
        parts = BY_NAME[name].path if name in BY_NAME else tuple(name.split("."))
        if len(_PATHS) < 10_000:  # names come from code, but a bound costs nothing
            _PATHS[name] = parts
    return parts


def unflatten(flat: Mapping[str, Any], *, public: bool = False) -> dict[str, Any]:
    """{'event.id': 1} -> {'event': {'id': 1}}. ``public`` leaves out process-private "_" keys."""
    # The delivery worker runs this on every event: paths are split once per name, not per event.
    doc: dict[str, Any] = {}
    for name, value in flat.items():
        if public and name[:1] == "_":
            continue
        parts = _PATHS.get(name) or _path(name)
        if len(parts) == 2:  # most ECS names: one level, no inner loop
            child = doc.get(parts[0])
            if child is None:
                doc[parts[0]] = {parts[1]: value}
            else:
                child[parts[1]] = value
            continue
        node = doc
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return doc


def lookup(doc: Mapping[str, Any], name: str) -> Any:
    """Read a dotted field from a nested document; None when absent."""
    node: Any = doc
    for part in BY_NAME[name].path if name in BY_NAME else name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


# --- validation ----------------------------------------------------------------------------


def _scalar_ok(ftype: str, value: Any) -> bool:
    if ftype in {"keyword", "wildcard", "match_only_text", "constant_keyword"}:
        return isinstance(value, str)
    if ftype == "long":
        return isinstance(value, int) and not isinstance(value, bool)
    if ftype == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ftype == "boolean":
        return isinstance(value, bool)
    if ftype == "date":
        if not isinstance(value, str):
            return False
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    if ftype == "ip":
        try:
            ipaddress.ip_address(value)
        except (TypeError, ValueError):
            return False
        return True
    if ftype == "geo_point":
        return isinstance(value, Mapping) and {"lat", "lon"} <= set(value)
    return False


def errors(doc: Mapping[str, Any], producers: set[Producer] | None = None) -> list[str]:
    """Why ``doc`` is not a valid event; empty when it is.

    ``producers`` limits which fields may appear (capture output has no enrichment fields).
    """
    problems: list[str] = []
    for name, value in flatten(doc).items():
        spec = BY_NAME.get(name)
        if spec is None:
            problems.append(f"{name}: not in the event schema")
            continue
        if producers is not None and spec.producer not in producers:
            problems.append(f"{name}: produced by {spec.producer.value}, not expected here")
        values = value if spec.array and isinstance(value, list) else [value]
        if isinstance(value, list) and not spec.array:
            problems.append(f"{name}: must be a single value, got a list")
            continue
        bad = [v for v in values if not _scalar_ok(spec.type, v)]
        if bad:
            problems.append(f"{name}: {bad[0]!r} is not a valid {spec.type}")
    for required in ("@timestamp", "event.id", "event.action", "event.kind"):
        if lookup(doc, required) is None:
            problems.append(f"{required}: required")
    return problems


# --- export and mappings ---------------------------------------------------------------------


# Keywords every analytics page groups on: their global ordinals are built when a refresh makes
# new events searchable, not by the first aggregation after it (a live page's next poll).
EAGER_ORDINALS = frozenset({"event.action", "user.id", "eventtrail.community.slug",
                            "eventtrail.target.id", "eventtrail.target.state",
                            "eventtrail.video.id"})


def _mapping_for(spec: Field) -> dict[str, Any]:
    mapping: dict[str, Any] = {"type": spec.type}
    if spec.type == "keyword":
        mapping["ignore_above"] = 1024
    if spec.name in EAGER_ORDINALS:
        mapping["eager_global_ordinals"] = True
    if spec.text:
        mapping["fields"] = {"text": {"type": "match_only_text"}}
    mapping.update(spec.extra)
    return mapping


def mappings() -> dict[str, Any]:
    """Elasticsearch mappings for every schema field, nested as ES expects."""
    properties: dict[str, Any] = {}
    for spec in FIELDS:
        node = properties
        for part in spec.path[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[spec.path[-1]] = _mapping_for(spec)
    # Unknown fields are kept in _source but never indexed: no mapping explosion, no rejects.
    return {"dynamic": False, "date_detection": False, "properties": properties}


def walk_mapping(properties: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Yield (dotted name, type) for every leaf of an ES ``properties`` mapping."""
    for key, value in properties.items():
        name = f"{prefix}{key}"
        if "properties" in value:
            yield from walk_mapping(value["properties"], name + ".")
        else:
            yield name, value.get("type", "object")


def field_types() -> dict[str, str]:
    """Each field's mapping type: what the pipeline's type gate (logstash/scripts/) enforces."""
    return {f.name: f.type for f in FIELDS}


def export() -> dict[str, Any]:
    """The schema as JSON-ready data (``manage.py eventtrail_schema``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "ecs_version": ECS_VERSION,
        "fields": [
            {
                "name": f.name,
                "type": f.type,
                "producer": f.producer.value,
                "ecs": f.ecs,
                "array": f.array,
                "description": f.description,
            }
            for f in FIELDS
        ],
    }


def index_template(
    data_stream: str,
    *,
    ilm_policy: str | None = "eventtrail",
    priority: int = 600,
    index_mode: str | None = "standard",
) -> dict[str, Any]:
    """A composable index template for ``data_stream`` and its dead-letter twin.

    ``index_mode`` is explicit because Elasticsearch 9 makes new ``logs-*-*`` streams
    logsdb, with synthetic ``_source``; we keep ``standard`` so ``_source`` is stored as sent.
    """
    type_, dataset, namespace = data_stream.split("-", 2)
    settings: dict[str, Any] = {"index": {"number_of_replicas": 0}}
    if index_mode:
        settings["index"]["mode"] = index_mode
    if ilm_policy:
        settings["index"]["lifecycle"] = {"name": ilm_policy}
    return {
        "index_patterns": [f"{type_}-{dataset}-*", f"{type_}-{dataset}.*-*"],
        "data_stream": {},
        "priority": priority,
        "template": {"settings": settings, "mappings": mappings()},
        "_meta": {
            "description": "Event Trail events, rendered from eventtrail.schema",
            "schema_version": SCHEMA_VERSION,
            "managed_by": "eventtrail",
        },
    }
