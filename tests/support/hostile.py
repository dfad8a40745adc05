"""A hostile corpus for the Logstash pipeline: every field it reads, writes or routes on, with
every JSON type and the values that stress a field. Shared by tests/test_logstash_scripts.py
and scripts/real_logstash_run.py, which sends it to a real Logstash."""
import hashlib
import itertools
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

UUID = "01a24d39-4d58-7709-853b-e41babe0eb19"
VALID = {"@timestamp": "2026-12-06T10:00:00.000Z",
         "event": {"id": UUID, "action": "article.view", "duration": 1200,
                   "category": ["web"], "type": ["access"]},
         "user": {"id": "42", "roles": ["staff"]},
         "user_agent": {"original": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"},
         "source": {"ip": "203.0.113.7"},
         "url": {"path": "/c/gardening/a/12/", "query": "page=2"},
         "http": {"request": {"method": "GET"}, "response": {"status_code": 200}},
         "eventtrail": {"community": {"slug": "gardening"}, "target": {"id": "12"},
                        "browser": {"scroll_depth": 75}, "video": {"position": 12.5}}}


def deep(depth):
    value = "bottom"
    for _ in range(depth):
        value = {"a": value}
    return value


# Every JSON type, and the values that stress a field: control characters, a huge string, huge
# and tiny numbers, empty and nested containers, deep nesting.
VALUES = {
    "null": None, "true": True, "false": False, "zero": 0, "negative": -1, "float": 1.5,
    "huge_float": 1e308, "huge_int": 2**70, "empty": "", "blank": " \t", "text": "x",
    "control": "a\u0000b\nc\u001b[31m\u2028", "huge_text": "x" * 100_000, "list": [],
    "list_of_int": [1, 2], "list_of_objects": [{"a": 1}], "object": {}, "object_of": {"a": "b"},
    "deep": deep(200), "numeric_text": "123", "bool_text": "false",
}
# Every field the pipeline reads, writes or routes on, and the objects that hold them.
FIELDS = [
    "event", "event.id", "event.action", "event.duration", "event.ingested", "event.category",
    "tags", "message", "@timestamp", "user_agent", "user_agent.original", "user_agent.os",
    "user_agent.device", "user_agent.name", "source", "source.ip", "source.geo",
    "eventtrail", "eventtrail.bot", "eventtrail.search", "eventtrail.search.query",
    "eventtrail.browser.scroll_depth", "eventtrail.video.position", "data_stream",
    "data_stream.type", "http.response.status_code", "user", "user.roles", "url.path", "@metadata",
]


def with_value(name, value):
    event = json.loads(json.dumps(VALID))
    *parents, leaf = name.split(".")
    node = event
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return None
    node[leaf] = value
    return event


CORPUS = [(f"{name}={kind}", event) for name, (kind, value) in
          itertools.product(FIELDS, VALUES.items())
          if (event := with_value(name, value)) is not None]
CORPUS += [
    ("search event with an object query", {**VALID, "event": {**VALID["event"], "action":
                                                                "article.search"},
                                           "eventtrail": {"search": {"query": {"q": 1}}}}),
    ("unknown top-level object", {**VALID, "extra": deep(50)}),
    ("key with brackets", {**VALID, "a]b[c": 1, "event": {**VALID["event"], "[x]": 2}}),
    ("unicode everywhere", {**VALID, "url": {"path": "/ü/😀/\u202e"}}),
]


def inputs_digest() -> str:
    """One digest of the pipeline, its scripts and this corpus: what a recorded run of a real
    Logstash (tests/data/real_logstash_run.json) was made from."""
    digest = hashlib.sha256()
    for path in [ROOT / "logstash" / "pipeline" / "eventtrail.conf",
                 *sorted((ROOT / "logstash" / "scripts").iterdir()), Path(__file__)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
