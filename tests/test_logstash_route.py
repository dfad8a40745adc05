"""The route explainer: Logstash's condition semantics, mutate, the codecs, and the command."""
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from eventtrail.logstash import ConfigError, parse
from eventtrail.logstash.route import decode, explain, route, ruby_regex

PIPELINE = """
filter {
  if %s {
    mutate { id => "yes" add_tag => ["yes"] }
  } else {
    mutate { id => "no" add_tag => ["no"] }
  }
}
output {
  if "yes" in [tags] {
    elasticsearch { id => "out" data_stream => "true" data_stream_dataset => "taken" }
  } else {
    elasticsearch { id => "other" data_stream => "true" data_stream_dataset => "${DS:skipped}" }
  }
}
"""


def taken(condition, event):
    result = route(parse(PIPELINE % condition), event)
    assert result.hazards == [], result.hazards
    return result.stream == "logs-taken-default"


@pytest.mark.parametrize("value, truthy", [
    (0, True), ([], True), ({}, True), ("0", True), (" ", True), (1.5, True),
    (False, False), ("", False), ("false", False), (None, False),
])
def test_truthiness_is_javas_to_string_test(value, truthy):
    event = {"f": value} if value is not None else {}
    assert taken("[f]", event) is truthy
    assert taken("![f]", event) is not truthy


@pytest.mark.parametrize("value, matches", [
    ("abc", True), ("", True), (7, False), (True, False), (["abc"], False), ({"a": "b"}, False),
])
def test_regex_match_is_false_for_anything_but_a_string(value, matches):
    assert taken("[f] =~ //", {"f": value}) is matches
    assert taken("[f] !~ //", {"f": value}) is not matches


def test_caret_and_dollar_match_at_line_ends_as_in_ruby():
    uuid = "01a24d39-4d58-7709-853b-e41babe0eb19"
    sneaky = {"id": "garbage\n" + uuid}
    assert taken(r"[id] =~ /^[0-9a-f-]{36}$/", sneaky)
    assert not taken(r"[id] =~ /\A[0-9a-f-]{36}\z/", sneaky)
    assert taken(r"[id] =~ /\A[0-9a-f-]{36}\z/", {"id": uuid})
    assert not taken(r"[id] =~ /\A[0-9a-f-]{36}\z/", {"id": uuid + "\n"})
    assert taken(r"[id] =~ /\A[0-9a-f-]{36}\Z/", {"id": uuid + "\n"})


def test_ruby_regex_translation():
    assert ruby_regex(r"\h+\z").fullmatch("beef")
    assert ruby_regex(r"(?m)a.b").search("a\nb")
    assert not ruby_regex(r"a.b").search("a\nb")


@pytest.mark.parametrize("condition, event, expected", [
    ('[a] == "5"', {"a": 5}, False),
    ("[a] == 5", {"a": 5}, True),
    ("[a] == 5", {"a": 5.0}, False),
    ('[a] != "x"', {}, True),
    ('"ab" in [s]', {"s": "xaby"}, True),
    ('"ab" in [s]', {"s": ["ab", "c"]}, True),
    ('"ab" in [s]', {"s": ["abc"]}, False),
    ('"ab" in [s]', {"s": {"ab": 1}}, False),
    ('[s] in ["5", "6"]', {"s": 5}, True),
    ('[s] in ["5", "6"]', {"s": [5]}, False),
    ('[s] in "abcdef"', {"s": "cd"}, True),
    ('[s] not in ["a"]', {}, True),
    ('[a] or [b] and [c]', {"a": 1}, True),
    ('[a] and [b] or [c]', {"c": 1}, True),
    ('[a] and ([b] or [c])', {"c": 1}, False),
    ('[a] xor [b]', {"a": 1}, True),
    ('[a] nand [b]', {"a": 1, "b": 1}, False),
    ("[n][0] == 1", {"n": [1, 2]}, True),
    ("[n][x]", {"n": "scalar"}, False),
])
def test_conditions_follow_logstash(condition, event, expected):
    assert taken(condition, event) is expected


def test_mixing_xor_with_and_is_refused_as_logstash_does():
    with pytest.raises(ConfigError, match="xor"):
        parse(PIPELINE % "[a] xor [b] and [c]")


def test_comparing_a_missing_field_is_a_hazard():
    result = route(parse(PIPELINE % "[a] > 5"), {})
    assert any("raises" in h for h in result.hazards)


def test_mutate_is_simulated_in_its_own_order_and_inside_its_rescue():
    config = parse("""
    filter {
      mutate {
        replace => { "[flag]" => "true" "[copy]" => "%{[src][x]}" }
        convert => { "[flag]" => "boolean" }
        strip => ["[text]"]
        add_tag => ["done"]
        remove_field => ["[gone]"]
      }
      mutate { id => "fails" replace => { "[scalar][child]" => "x" } add_tag => ["never"] }
    }
    output { stdout {} }
    """)
    result = route(config, {"src": {"x": 7}, "text": "  hi ", "gone": 1, "scalar": "s"})
    assert result.event["flag"] is True and result.event["copy"] == "7"
    assert result.event["text"] == "hi" and "gone" not in result.event
    assert result.tags == ["done", "_mutate_error"]
    assert result.filters == ["mutate (line 3)", "mutate (fails)"]
    assert result.outputs == ["stdout (line 12)"] and result.stream is None


FILTERS = """
filter {
  useragent { id => "ua" source => "[user_agent][original]" target => "user_agent" }
  geoip { id => "geo" source => "[source][ip]" target => "source" }
}
output { stdout {} }
"""


@pytest.mark.parametrize("event, hazard", [
    ({"user_agent": {"original": 7}}, "ua"),
    ({"user_agent": {"original": True}}, "ua"),
    ({"user_agent": {"original": [False]}}, "ua"),
    ({"user_agent": {"original": "Mozilla", "os": "x"}}, "ua"),
    ({"source": {"ip": {"a": 1}}}, "geo"),
    ({"source": {"ip": []}}, "geo"),
    ({"source": {"ip": [1]}}, "geo"),
    ({"source": {"ip": "8.8.8.8", "geo": 5}}, "geo"),
])
def test_a_filter_fed_a_type_it_cannot_take_is_a_hazard(event, hazard):
    (found,) = route(parse(FILTERS), event).hazards
    assert f"({hazard})" in found and "stops the pipeline" in found


@pytest.mark.parametrize("event", [
    {}, {"user_agent": {"original": "Mozilla"}}, {"user_agent": {"original": {"a": 1}}},
    {"user_agent": {"original": []}}, {"source": {"ip": "8.8.8.8"}}, {"source": {"ip": ["1.1.1.1"]}},
])
def test_types_the_filters_take_are_not_hazards(event):
    assert route(parse(FILTERS), event).hazards == []


def test_the_json_codec_fails_a_whole_array_for_one_bad_element():
    body = json.dumps([{"a": 1}, 7])
    (event,) = decode(body)
    assert event["tags"] == ["_jsonparsefailure"] and event["message"] == body
    assert [e["a"] for e in decode(json.dumps([{"a": 1}, {"a": 2}]))] == [1, 2]
    assert decode("7")[0]["tags"] == ["_jsonparsefailure"]
    assert decode("{not json")[0]["tags"] == ["_jsonparsefailure"]
    assert decode('{"a": NaN}')[0]["tags"] == ["_jsonparsefailure"]


def test_json_lines_decode_each_line_alone():
    events = decode('{"a": 1}\n7\n{"a": 2}\n', "tcp")
    assert [e.get("a") for e in events] == [1, None, 2]
    assert events[1]["tags"] == ["_jsonparsefailure"]


def test_the_event_constructor_moves_what_it_cannot_hold():
    (event,) = decode(json.dumps({"@timestamp": "yesterday", "tags": {"a": 1},
                                  "@metadata": {"secret": 1}}))
    assert event["_@timestamp"] == "yesterday" and event["_tags"] == [{"a": 1}]
    assert event["tags"] == ["_tagsparsefailure", "_timestampparsefailure"]
    assert "@metadata" not in event
    (event,) = decode(json.dumps({"@timestamp": 1700000000}))
    assert "_timestampparsefailure" in event["tags"]
    (event,) = decode(json.dumps({"@timestamp": "2026-12-06T10:00:00.000Z", "tags": "x"}))
    assert event["tags"] == "x"


def test_explain_routes_every_decoded_event():
    results = list(explain(parse(PIPELINE % "[ok]"), json.dumps([{"ok": 1}, {"ok": 0}, {}])))
    assert [r.stream for r in results] == ["logs-taken-default"] * 2 + ["logs-skipped-default"]


def test_the_command_explains_a_file_and_fails_on_a_hazard(tmp_path):
    pipeline = tmp_path / "p.conf"
    pipeline.write_text(FILTERS)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"source": {"ip": "8.8.8.8"}}))
    bad.write_text(json.dumps([{"source": {"ip": "8.8.8.8"}}, {"source": {"ip": 7}}]))
    out = StringIO()
    call_command("eventtrail_check", str(pipeline), "--route", str(good), stdout=out)
    assert "filter geoip (geo)" in out.getvalue() and "HAZARD" not in out.getvalue()
    out = StringIO()
    with pytest.raises(CommandError, match="1 place"):
        call_command("eventtrail_check", str(pipeline), "--route", str(bad), stdout=out)
    assert "== event 2" in out.getvalue() and "IllegalArgumentException" in out.getvalue()
    with pytest.raises(CommandError, match="cannot read"):
        call_command("eventtrail_check", str(pipeline), "--route", str(tmp_path / "none.json"))


def test_a_present_null_is_not_a_missing_field():
    # Logstash holds a JSON null as Ruby nil: its text is "", so a list with "" matches it,
    # while a missing field matches nothing (EventCondition.FieldInConstantList).
    assert taken('[f] in ["x", ""]', {"f": None})
    assert not taken('[f] in ["x", ""]', {})
    assert not taken("[f]", {"f": None})


def test_writing_under_a_null_raises_inside_mutate():
    config = parse('filter { mutate { replace => { "[o][child]" => "x" } } } output { stdout {} }')
    assert route(config, {"o": None}).tags == ["_mutate_error"]
    assert route(config, {}).event["o"] == {"child": "x"}


def test_a_null_metadata_fails_the_codec_like_any_non_object():
    (event,) = decode(json.dumps({"@metadata": None, "a": 1}))
    assert event["tags"] == ["_jsonparsefailure"]


def test_null_tags_are_illegal_tags():
    # A real Logstash 9.5.2 dead-lettered {"tags": null} (tests/data/real_logstash_run.json).
    (event,) = decode(json.dumps({"tags": None}))
    assert event["tags"] == ["_tagsparsefailure"] and event["_tags"] == [None]
