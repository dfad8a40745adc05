"""The pipeline's Ruby scripts (logstash/scripts/), the same rules in Python for the explainer.

``type_gate.rb``: a value Elasticsearch's mapping would refuse is removed, kept as JSON text
under ``_eventtrail_removed`` and the event tagged ``_eventtrail_bad_field:<field>``.
``split_batch.rb``: a JSON array body the json codec failed whole becomes one event per element.
``tests/test_logstash_scripts.py`` runs the Ruby and these on the same input and compares them.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
FLOAT_MAX = 3.4028235e38
_NUMERIC = re.compile(r"\A-?[0-9]{1,19}(\.[0-9]+)?\Z")
KEEP = 2048  # characters of a removed value kept for whoever reads the dead letter
MAX_ELEMENTS = 10_000  # a bigger failed array stays one dead letter


def tree(types: Mapping[str, str]) -> dict[str, Any]:
    """{"event.id": "keyword"} as {"event": {"id": "keyword"}}, without @timestamp (Logstash's
    own Timestamp, parsed when the event was built)."""
    root: dict[str, Any] = {}
    for name, type_ in types.items():
        if name == "@timestamp":
            continue
        *parents, leaf = name.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = type_
    return root


def _number(value: Any, limit: float) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -limit <= value <= limit if limit != LONG_MAX else LONG_MIN <= value <= LONG_MAX
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) <= limit
    return isinstance(value, str) and bool(_NUMERIC.match(value)) and abs(float(value)) <= limit


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


_ONE: dict[str, Callable[[Any], bool]] = {
    **dict.fromkeys(("long", "integer", "short", "byte"), lambda v: _number(v, LONG_MAX)),
    **dict.fromkeys(("float", "double", "half_float", "scaled_float"),
                    lambda v: _number(v, FLOAT_MAX)),
    "boolean": lambda v: v is True or v is False or v in ("true", "false", ""),
    "ip": lambda v: isinstance(v, str),
    "date": lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)),
    "geo_point": lambda v: isinstance(v, str | dict),
}


def fits(type_: str, value: Any) -> bool:
    """Whether Elasticsearch's ``type_`` takes ``value``: one value, or a flat array of them."""
    one = _ONE.get(type_, _scalar)
    if isinstance(value, list) and type_ != "geo_point":
        return all(item is None or one(item) for item in value)
    return one(value)


def add_tag(event: dict[str, Any], tag: str) -> None:
    """``Event#tag``: append once; a string becomes a list."""
    tags = event.get("tags")
    if tags is None:
        event["tags"] = [tag]
    elif isinstance(tags, list):
        if tag not in tags:
            tags.append(tag)
    else:
        event["tags"] = [tags] if tags == tag else [tags, tag]


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)[:KEEP]


def gate(event: dict[str, Any], schema_tree: Mapping[str, Any], prefix: tuple[str, ...] = ()
         ) -> None:
    """``type_gate.rb``'s ``walk``, on the nested dict ``event``."""
    node: Any = event
    for part in prefix:
        node = node[part]
    for key, spec in schema_tree.items():
        if not isinstance(node, dict) or key not in node:
            continue
        value = node[key]
        path = (*prefix, key)
        if value is None:
            if isinstance(spec, dict):
                del node[key]  # a null object: the filters cannot write under it (Ruby nil)
            continue
        if isinstance(spec, dict):
            if isinstance(value, dict):
                gate(event, spec, path)
            else:
                _reject(event, node, path, value)
        elif not fits(spec, value):
            _reject(event, node, path, value)


def _reject(event: dict[str, Any], parent: dict[str, Any], path: tuple[str, ...], value: Any
            ) -> None:
    name = ".".join(path)
    del parent[path[-1]]
    removed = event.get("_eventtrail_removed")
    if not isinstance(removed, list):
        removed = event["_eventtrail_removed"] = []
    removed.append({"field": name, "value": _text(value)})
    add_tag(event, f"_eventtrail_bad_field:{name}")


def split(event: Mapping[str, Any], new_event: Callable[[Any], dict[str, Any]]
          ) -> list[dict[str, Any]] | None:
    """``split_batch.rb``: the events a failed array body becomes, or None to pass it on."""
    tags, message = event.get("tags"), event.get("message")
    if not (isinstance(tags, list) and "_jsonparsefailure" in tags and isinstance(message, str)
            and message.lstrip().startswith("[")):
        return None
    try:
        elements = json.loads(message, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(elements, list) or len(elements) > MAX_ELEMENTS:
        return None
    return [_element_event(element, new_event) for element in elements]


def _element_event(element: Any, new_event: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    failed = {"message": json.dumps(element, separators=(",", ":"), ensure_ascii=False),
              "tags": ["_jsonparsefailure"]}
    if isinstance(element, dict):
        try:
            return new_event(element)
        except TypeError:
            pass
    return new_event(failed)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
