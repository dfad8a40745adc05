"""The shipped pipeline, checked by the project's own LSCL parser against schema and registry."""
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from eventtrail import enrichment, schema
from eventtrail.logstash import check_pipeline, parse_file
from eventtrail.logstash.parser import Attribute, Match, iter_conditions, iter_plugins
from eventtrail.registry import registry

PIPELINE = Path(__file__).resolve().parent.parent / "logstash" / "pipeline"


def test_the_shipped_pipeline_has_no_problem():
    problems = check_pipeline(PIPELINE, fields=set(schema.BY_NAME), actions=registry.actions())
    assert [str(p) for p in problems] == []


def test_every_registered_type_is_handled_and_a_new_one_is_reported():
    from eventtrail import browser_event

    browser_event("browser.print", {})
    try:
        problems = check_pipeline(PIPELINE, fields=set(schema.BY_NAME),
                                  actions=registry.actions())
    finally:
        registry.remove("browser.print")
    assert any("browser.print" in p.message for p in problems)


def test_eventtrail_check_command(tmp_path):
    out = StringIO()
    call_command("eventtrail_check", str(PIPELINE), stdout=out)
    assert "OK" in out.getvalue()
    broken = tmp_path / "broken.conf"
    broken.write_text('input { http { port => 8080, host => "0.0.0.0" } }\n'
                      'filter { mutate { add_field => { "[user][nick]" => "x" } } }\n')
    out = StringIO()
    with pytest.raises(CommandError, match="problem"):
        call_command("eventtrail_check", str(broken), stdout=out)
    assert "broken.conf:1" in out.getvalue()


def plugin(name, section="input"):
    config = parse_file(PIPELINE / "eventtrail.conf")
    return [p for s, p in iter_plugins(config) if s == section and p.name == name]


def options(p):
    return {a.name: a.value for a in p.attributes if isinstance(a, Attribute)}


def test_http_input_keeps_the_events_own_url_path_and_user_agent():
    (http,) = plugin("http")
    opts = options(http)
    assert opts["ecs_compatibility"].value == "disabled"
    for target in ("request_headers_target_field", "remote_host_target_field"):
        assert opts[target].value.startswith("[@metadata]"), target


def test_tcp_input_reads_json_lines_in_ecs_mode():
    (tcp,) = plugin("tcp")
    opts = options(tcp)
    assert opts["codec"].name == "json_lines"
    assert "ecs_compatibility" not in opts or opts["ecs_compatibility"].value != "disabled"


def test_the_pipeline_and_the_embedded_store_flag_the_same_bots():
    config = parse_file(PIPELINE / "eventtrail.conf")
    patterns = {
        node.pattern.pattern
        for condition in iter_conditions(config)
        for node in condition.operands
        if isinstance(node, Match) and "user_agent" in getattr(node.subject, "raw", "")
        and "bot" in node.pattern.pattern
    }
    assert patterns == {enrichment.BOT_PATTERN}


def test_eventtrail_check_reads_the_pipeline_dir_setting(tmp_path, settings, monkeypatch):
    out = StringIO()
    call_command("eventtrail_check", stdout=out)  # the demo points the setting at the repo's
    assert "OK" in out.getvalue()
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "broken.conf").write_text(
        'input { http { port => 8080 } }\nfilter { mutate { add_field => { "[user][nick]" => "x" } } }\n')
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "LOGSTASH_PIPELINE_DIR": "pipeline"}
    monkeypatch.chdir(tmp_path)  # a relative setting is taken from the working directory
    out = StringIO()
    with pytest.raises(CommandError, match="problem"):
        call_command("eventtrail_check", stdout=out)
    assert "broken.conf:2" in out.getvalue()
