"""logstash/: the pipeline's inputs, dead-lettering, routing and output, read as text.

These are plain-text checks until the project's Logstash config parser can read the pipeline
as a tree; they hold the facts the parser-based checks will hold too.
"""
import re
from pathlib import Path

import pytest
import yaml
from eventtrail import schema

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "logstash/pipeline/eventtrail.conf"
# The actions the event-type registry declares when this was written; `manage.py
# eventtrail_check` compares the pipeline with the registry itself.
ACTIONS = {
    "user.login", "user.logout", "user.login_failed", "community.view", "community.join",
    "article.view", "article.search", "article.create", "article.edit", "article.state_change",
    "page.view", "browser.scroll", "browser.resize", "browser.visibility", "video.play",
    "video.pause", "video.seek", "video.ended", "video.progress",
}
# Logstash puts @version on every event; the pipeline only ever removes it.
LOGSTASH_OWN_FIELDS = {"@version"}


def strip_comments(text):
    """Drop # comments, leaving # inside quoted strings and regexes alone."""
    out = []
    for line in text.splitlines():
        quote = None
        for i, ch in enumerate(line):
            if quote:
                if ch == quote and line[i - 1] != "\\":
                    quote = None
            elif ch in "\"'/":
                quote = ch
            elif ch == "#":
                line = line[:i]
                break
        out.append(line)
    return "\n".join(out)


def block(text, opener):
    """The text between the braces that follow the first match of ``opener``."""
    match = re.search(opener, text, re.M)
    assert match, opener
    start = text.index("{", match.end() - 1)
    depth, quote = 0, None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    raise AssertionError(f"unbalanced braces after {opener}")


@pytest.fixture(scope="module")
def pipeline():
    return strip_comments(PIPELINE.read_text())


@pytest.fixture(scope="module")
def http_input(pipeline):
    return block(block(pipeline, r"^input\s*\{"), r"\bhttp\s*\{")


def without_codec(plugin):
    codec = re.search(r"codec\s*=>\s*\w+\s*\{", plugin)
    return plugin[:codec.start()] + plugin[codec.start():].split("}", 1)[1] if codec else plugin


def test_http_input_keeps_the_events_own_url_path_and_user_agent(http_input):
    # ECS mode would copy the delivery request's User-Agent and path over the event's own.
    options = without_codec(http_input)
    assert re.search(r"^\s*ecs_compatibility\s*=>\s*disabled\s*$", options, re.M)
    headers = re.search(r'request_headers_target_field\s*=>\s*"([^"]+)"', options)
    remote = re.search(r'remote_host_target_field\s*=>\s*"([^"]+)"', options)
    assert headers and headers.group(1).startswith("[@metadata]")
    assert remote and remote.group(1).startswith("[@metadata]")
    for field in ("url", "user_agent", "http", "host", "headers"):
        assert not re.search(rf'=>\s*"\[?{field}\]?', options), field


def test_http_input_decodes_every_body_as_json_without_copying_it(http_input):
    assert re.search(r"additional_codecs\s*=>\s*\{\s*\}", http_input)
    codec = block(http_input, r"codec\s*=>\s*json\s*\{")
    assert re.search(r"ecs_compatibility\s*=>\s*disabled", codec)


def test_http_input_authenticates_with_credentials_from_the_environment(http_input):
    assert 'user => "${LOGSTASH_HTTP_USER}"' in http_input
    assert 'password => "${LOGSTASH_HTTP_PASSWORD}"' in http_input
    assert re.search(r"\bport\s*=>\s*8080\b", http_input)
    assert re.search(r"\bssl_enabled\s*=>\s*false\b", http_input)


def test_tcp_input_reads_json_lines_in_ecs_mode(pipeline):
    tcp = block(block(pipeline, r"^input\s*\{"), r"\btcp\s*\{")
    assert re.search(r"\bport\s*=>\s*5000\b", tcp)
    assert re.search(r"codec\s*=>\s*json_lines\s*\{", tcp)
    # Its connection metadata goes under [@metadata][input][tcp] only in ECS mode.
    assert "ecs_compatibility" not in without_codec(tcp)


def field_references(text):
    # Regex literals hold character classes that look like field references.
    text = re.sub(r"[=!]~\s*/(?:\\/|[^/\n])*/", "", text)
    for match in re.finditer(r"(?:\[[A-Za-z0-9_@.]+\])+", text):
        yield ".".join(re.findall(r"\[([^\]]+)\]", match.group(0)))


def test_every_field_referenced_is_in_the_schema_or_metadata(pipeline):
    refs = set(field_references(pipeline))
    assert {"event.action", "event.id", "user_agent.original", "source.ip"} <= refs
    unknown = {
        ref for ref in refs
        if ref not in schema.BY_NAME
        and not ref.startswith("@metadata")
        and ref not in LOGSTASH_OWN_FIELDS
    }
    assert unknown == set()


def actions_in_conditions(pipeline):
    named = set()
    for cond in re.findall(r"\bif\s+(\[event\]\[action\][^{]*)\{", pipeline):
        if m := re.match(r'\[event\]\[action\]\s*==\s*"([^"]+)"', cond):
            named.add(m.group(1))
        elif m := re.match(r"\[event\]\[action\]\s+in\s+\[([^\]]*)\]", cond):
            named |= set(re.findall(r'"([^"]+)"', m.group(1)))
    return named


def test_every_registered_event_type_is_handled_by_name(pipeline):
    assert ACTIONS - actions_in_conditions(pipeline) == set()


def test_the_event_types_section_is_marked_once():
    text = PIPELINE.read_text()
    assert text.count("EVENT TYPES: the one place to add a new event type's handling") == 1


def test_search_terms_are_kept_only_by_search_events(pipeline):
    drop = block(pipeline, r'if \[event\]\[action\] != "article.search" \{')
    assert '"[eventtrail][search][query]"' in drop and "remove_field" in drop


def test_failed_logins_are_tagged_security(pipeline):
    branch = block(pipeline, r'if \[event\]\[action\] == "user.login_failed" \{')
    assert re.search(r'add_tag\s*=>\s*\["security"\]', branch)


def test_invalid_events_are_tagged_not_dropped(pipeline):
    condition = re.search(r"if (.*_jsonparsefailure.*) \{", pipeline).group(1)
    for part in ('"_jsonparsefailure" in [tags]', '"_timestampparsefailure" in [tags]',
                 "![event][action]", "![event][id]"):
        assert part in condition
    assert re.search(r"\bdrop\s*\{", pipeline) is None
    assert pipeline.count('add_tag => ["_eventtrail_invalid"]') == 2


def test_bots_are_flagged_and_tagged(pipeline):
    bot = block(pipeline, r'if \[user_agent\]\[device\]\[name\] == "Spider"')
    assert '"[eventtrail][bot]" => "boolean"' in bot
    assert 'add_tag => ["bot"]' in bot


def test_enrichment_targets_ecs_fields(pipeline):
    useragent = block(pipeline, r"\buseragent\s*\{")
    assert 'source => "[user_agent][original]"' in useragent
    assert 'target => "user_agent"' in useragent
    geoip = block(pipeline, r"\bgeoip\s*\{")
    assert 'source => "[source][ip]"' in geoip and 'target => "source"' in geoip
    assert 'event.set("[event][ingested]"' in pipeline


def outputs(pipeline):
    out = block(pipeline, r"^output\s*\{")
    dead = block(out, r'if "_eventtrail_invalid" in \[tags\] \{')
    events = block(out, r"\}\s*else\s*\{")
    return dead, events


def test_events_are_written_once_under_their_own_id(pipeline):
    _, events = outputs(pipeline)
    assert 'document_id => "%{[event][id]}"' in events
    assert 'action => "create"' in events
    assert 'silence_errors_in_log => ["version_conflict_engine_exception"]' in events
    assert 'data_stream => "true"' in events
    assert 'data_stream_dataset => "eventtrail"' in events
    assert 'data_stream_namespace => "${EVENTTRAIL_NAMESPACE:default}"' in events


def test_dead_letters_go_to_their_own_stream_with_fresh_ids(pipeline):
    dead, _ = outputs(pipeline)
    assert 'data_stream_dataset => "eventtrail.deadletter"' in dead
    assert f"logs-{schema.DEADLETTER_DATASET}-default" == "logs-eventtrail.deadletter-default"
    assert "document_id" not in dead


def test_logstash_settings_turn_on_the_persistent_and_dead_letter_queues():
    settings = yaml.safe_load((ROOT / "logstash/config/logstash.yml").read_text())
    assert settings["queue.type"] == "persisted"
    assert settings["dead_letter_queue.enable"] is True
    assert settings["api.http.port"] == 9600
    pipelines = yaml.safe_load((ROOT / "logstash/config/pipelines.yml").read_text())
    assert pipelines == [{
        "pipeline.id": "eventtrail",
        "path.config": "/usr/share/logstash/pipeline/eventtrail.conf",
    }]
