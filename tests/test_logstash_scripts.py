"""The pipeline's Ruby scripts, and a hostile corpus routed through the whole pipeline.

The scripts run on MRI Ruby (tests/support/logstash_scripts.rb) and their Python twins
(eventtrail.logstash.gate) on the same input: the explainer is only as good as that agreement.
Then every event of the corpus is routed through the shipped pipeline: it must end in the main
or the dead-letter stream, never reach a filter with a type it raises on, carry a reason tag
when anything was wrong, and leave Elasticsearch a document its mapping takes.
"""
import contextlib
import json
import subprocess
from pathlib import Path

import pytest
from eventtrail import schema
from eventtrail.logstash import parse_file
from eventtrail.logstash.gate import fits, gate, split, tree
from eventtrail.logstash.route import _new_event, decode, explain

from tests.support.hostile import CORPUS, FIELDS, VALID

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "logstash" / "scripts"
HARNESS = ROOT / "tests" / "support" / "logstash_scripts.rb"
PIPELINE = ROOT / "logstash" / "pipeline" / "eventtrail.conf"
MAIN, DEADLETTER = "logs-eventtrail-default", "logs-eventtrail.deadletter-default"
@pytest.fixture(scope="module")
def config():
    return parse_file(PIPELINE)


def run_ruby(jobs):
    """Each job's events as the Ruby script returned them."""
    lines = "".join(json.dumps(job) + "\n" for job in jobs)
    done = subprocess.run(["ruby", str(HARNESS)], input=lines, capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    # Not splitlines(): a JSON string may hold U+2028, which Python counts as a line end.
    return [json.loads(line) for line in done.stdout.split("\n") if line]


def normal(events):
    """Removed values compared as JSON, not as text: Ruby writes 1e308 as 1.0e+308."""
    for event in events:
        for removed in event.get("_eventtrail_removed", []):
            with contextlib.suppress(ValueError):  # cut at KEEP characters: kept as text
                removed["value"] = json.loads(removed["value"])
    return events


def test_fields_json_is_the_schemas_rendering():
    # Regenerate with: cd app && python manage.py eventtrail_schema --types -o ../logstash/scripts/fields.json
    assert json.loads((SCRIPTS / "fields.json").read_text()) == schema.field_types()


def test_the_corpus_covers_every_field_with_every_kind_of_value():
    assert len(CORPUS) >= 40 * 10
    assert {name.split("=")[0] for name, _ in CORPUS} >= set(FIELDS)


def test_the_type_gate_in_ruby_and_in_python_agree():
    params = {"fields": str(SCRIPTS / "fields.json")}
    events = [event for _, event in CORPUS]
    ruby = run_ruby([{"script": str(SCRIPTS / "type_gate.rb"), "params": params, "event": e}
                     for e in events])
    schema_tree = tree(schema.field_types())
    for (name, _), event, from_ruby in zip(CORPUS, events, ruby, strict=True):
        try:
            python = _new_event(event)
        except TypeError:  # Logstash cannot build it (@metadata not an object): nor can Ruby
            assert from_ruby is None, name
            continue
        gate(python, schema_tree)
        assert normal(from_ruby) == normal([json.loads(json.dumps(python))]), name


BODIES = [
    [VALID, 7], [VALID, "x", None, [1], {"@metadata": 3}, VALID], [7], [[VALID]], [],
    [{"@timestamp": "yesterday"}, {"tags": {"a": 1}}],
]


def test_the_batch_splitter_in_ruby_and_in_python_agree():
    failed = [{"message": json.dumps(body), "tags": ["_jsonparsefailure"]} for body in BODIES]
    others = [{"message": "[1, 2]", "tags": ["other"]}, {"message": "{not json",
                                                         "tags": ["_jsonparsefailure"]},
              {"message": "[1, 2", "tags": ["_jsonparsefailure"]}, VALID]
    ruby = run_ruby([{"script": str(SCRIPTS / "split_batch.rb"), "event": e}
                     for e in failed + others])
    for event, from_ruby in zip(failed + others, ruby, strict=True):
        python = split(_new_event(event), _new_event)
        expected = [_new_event(event)] if python is None else python
        assert from_ruby == json.loads(json.dumps(expected)), event


def test_each_element_of_a_batch_is_its_own_event(config):
    body = json.dumps([VALID, 7, {**VALID, "event": {"action": "x"}}, {"@metadata": 1}, VALID])
    streams = [r.stream for r in explain(config, body)]
    assert streams == [MAIN, DEADLETTER, DEADLETTER, DEADLETTER, MAIN]


def mapping_problems(document):
    """Schema fields whose value the index template's mapping would refuse."""
    problems = []
    for name, type_ in schema.field_types().items():
        if name == "@timestamp":
            continue
        node = document
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and not fits(type_, node):
            problems.append(name)
    for name in {f.name.rsplit(".", 1)[0] for f in schema.FIELDS if "." in f.name}:
        node = document
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and not isinstance(node, dict):
            problems.append(name)
    return problems


@pytest.mark.parametrize("name, event", CORPUS, ids=[name for name, _ in CORPUS])
def test_a_hostile_event_ends_in_a_stream_with_a_reason_and_a_storable_document(
        config, name, event):
    results = list(explain(config, json.dumps(event)))
    assert results, name
    for result in results:
        assert result.hazards == [], result.hazards
        assert result.stream in (MAIN, DEADLETTER), str(result)
        assert mapping_problems(result.event) == [], name
        if result.stream == DEADLETTER:
            assert "_eventtrail_invalid" in result.tags
        # Anything removed is named by a tag and kept as text.
        removed = {r["field"] for r in result.event.get("_eventtrail_removed", [])}
        assert {f"_eventtrail_bad_field:{f}" for f in removed} <= set(result.tags)


def test_a_valid_event_passes_the_gate_untouched(config):
    (result,) = explain(config, json.dumps(VALID))
    assert result.stream == MAIN and result.tags == []
    assert "_eventtrail_removed" not in result.event
    assert result.event["event"]["duration"] == 1200


def test_the_tcp_input_isolates_lines(config):
    body = "\n".join([json.dumps(VALID), "7", "{not json", json.dumps(VALID)]) + "\n"
    assert [r.stream for r in explain(config, body, "tcp")] == [MAIN, DEADLETTER, DEADLETTER, MAIN]
    assert len(decode(body, "tcp")) == 4


def test_every_script_the_pipeline_names_is_mounted_from_the_repo(config):
    import yaml
    from eventtrail.logstash.parser import Hash, String, iter_plugins

    volumes = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["logstash"][
        "volumes"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in volumes)}
    named = []
    for _, plugin in iter_plugins(config):
        if plugin.name != "ruby" or plugin.get("path") is None:
            continue  # inline code
        named.append(plugin.get("path").value)
        params = plugin.get("script_params")
        if isinstance(params, Hash):
            named += [e.value.value for e in params.entries if isinstance(e.value, String)]
    assert len(named) == 3  # split_batch.rb, type_gate.rb and the fields.json it reads
    for path in named:
        directory, _, name = path.rpartition("/")
        assert directory in mounts, path
        assert (ROOT / mounts[directory] / name).is_file(), path
