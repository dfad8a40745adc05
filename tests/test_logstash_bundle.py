"""logstash/: the pipeline's inputs, dead-lettering, routing and output, read as a syntax tree.

tests/test_pipeline_check.py holds what check_pipeline proves (plugins, options, field names, every
registered event type handled somehow), the http input's ECS trap and the tcp input's mode. This
file holds the rest of what the pipeline promises, and shows each check failing on a copy of the
pipeline that breaks its promise.
"""
import json
from pathlib import Path

import pytest
import yaml
from eventtrail import schema
from eventtrail.logstash import parse, parse_file
from eventtrail.logstash.parser import (
    Array,
    Branch,
    Compare,
    Condition,
    FieldRef,
    Hash,
    In,
    Match,
    Not,
    Plugin,
    String,
    iter_field_refs,
    iter_plugins,
)
from eventtrail.logstash.route import explain, ruby_regex
from eventtrail.registry import registry
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "logstash/pipeline/eventtrail.conf"
MARKER = "EVENT TYPES: the one place to add a new event type's handling"


@pytest.fixture(scope="module")
def config():
    return parse_file(PIPELINE)


# --- reading the tree ----------------------------------------------------------------------------


def py(value):
    """An option value as plain Python; a plugin (a codec) stays a Plugin."""
    if isinstance(value, Array):
        return [py(item) for item in value.items]
    if isinstance(value, Hash):
        return {py(entry.key): py(entry.value) for entry in value.entries}
    if isinstance(value, Plugin):
        return value
    return value.value


def options(plugin):
    return {attribute.name: py(attribute.value) for attribute in plugin.attributes}


def the_plugin(config, kind, name):
    (found,) = [p for k, p in iter_plugins(config) if k == kind and p.name == name]
    return found


def plugins(body, name):
    """The ``name`` plugins directly in a clause's body."""
    return [s for s in body if isinstance(s, Plugin) and s.name == name]


def tags_added(body):
    return {tag for mutate in plugins(body, "mutate") for tag in options(mutate).get("add_tag", [])}


def branches(body):
    """Every branch in ``body``, nested ones included, in source order."""
    for statement in body:
        if isinstance(statement, Branch):
            yield statement
            for clause in statement.clauses:
                yield from branches(clause.body)


def parts(expression):
    """The expression and, through and/or chains and negations, every expression in it."""
    yield expression
    if isinstance(expression, Condition):
        for operand in expression.operands:
            yield from parts(operand)
    elif isinstance(expression, Not):
        yield from parts(expression.operand)


def is_field(node, dotted):
    return isinstance(node, FieldRef) and ".".join(node.path) == dotted


def compares(field, op, value):
    """A test for ``[field] op "value"``."""
    return lambda e: (isinstance(e, Compare) and e.op == op and is_field(e.left, field)
                      and isinstance(e.right, String) and e.right.value == value)


def shape(expression):
    """``"x" in [f]`` as ("in", "x", "f"), ``![f]`` as ("not", "f"); anything else as itself."""
    if (isinstance(expression, In) and isinstance(expression.item, String)
            and isinstance(expression.collection, FieldRef)):
        return ("not in" if expression.negated else "in", expression.item.value,
                ".".join(expression.collection.path))
    if isinstance(expression, Not) and isinstance(expression.operand, FieldRef):
        return ("not", ".".join(expression.operand.path))
    return expression


def clause_where(config, test):
    """The one if / else-if clause whose condition has a part passing ``test``, and its branch."""
    found = [(clause, branch)
             for section in config.sections for branch in branches(section.body)
             for clause in branch.clauses
             if clause.condition is not None and any(map(test, parts(clause.condition)))]
    assert len(found) == 1, found
    return found[0]


def actions_named(condition):
    """The event types a condition names: ``[event][action] == "x"`` or ``in ["x", ...]``."""
    named = set()
    for part in parts(condition):
        if (isinstance(part, Compare) and part.op == "==" and is_field(part.left, "event.action")
                and isinstance(part.right, String)):
            named.add(part.right.value)
        elif (isinstance(part, In) and not part.negated and is_field(part.item, "event.action")
              and isinstance(part.collection, Array)):
            named |= set(py(part.collection))
    return named


def routing_branch(config):
    """The branch after the EVENT TYPES marker that tests [event][action] and ends in an else."""
    (marker,) = [c.line for c in config.comments if MARKER in c.text]
    (filters,) = [s for s in config.sections if s.kind == "filter"]
    found = [b for b in branches(filters.body)
             if b.line > marker and b.clauses[-1].condition is None
             and all(any(is_field(ref, "event.action") for ref in iter_field_refs(c.condition))
                     for c in b.clauses[:-1])]
    assert len(found) == 1, found
    return found[0]


def outputs(config):
    """The options of the dead-letter output and of the events output."""
    (output,) = [s for s in config.sections if s.kind == "output"]
    (branch,) = output.body
    dead, events = branch.clauses
    assert [shape(o) for o in dead.condition.operands] == [("in", "_eventtrail_invalid", "tags")]
    assert events.condition is None
    (dead_letters,) = dead.body
    (stored,) = events.body
    assert dead_letters.name == stored.name == "elasticsearch"
    return options(dead_letters), options(stored)


# --- inputs --------------------------------------------------------------------------------------


def test_http_input_decodes_every_body_as_json_without_copying_it(config):
    http = options(the_plugin(config, "input", "http"))
    assert http["additional_codecs"] == {}
    codec = http["codec"]
    assert isinstance(codec, Plugin) and codec.name == "json"
    assert options(codec)["ecs_compatibility"] == "disabled"


def test_inputs_listen_on_their_ports_and_http_authenticates_from_the_environment(config):
    assert [p.name for kind, p in iter_plugins(config) if kind == "input"] == ["http", "tcp"]
    http = options(the_plugin(config, "input", "http"))
    assert http["port"] == 8080
    assert http["user"] == "${LOGSTASH_HTTP_USER}"
    assert http["password"] == "${LOGSTASH_HTTP_PASSWORD}"
    assert http["ssl_enabled"] == "false"
    assert options(the_plugin(config, "input", "tcp"))["port"] == 5000


# --- validation and enrichment -------------------------------------------------------------------


UUID = "01a24d39-4d58-7709-853b-e41babe0eb19"
VALID = {"@timestamp": "2026-12-06T10:00:00.000Z",
         "event": {"id": UUID, "action": "article.view"},
         "user_agent": {"original": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"},
         "source": {"ip": "203.0.113.7"}, "url": {"path": "/c/a/1/"}}
MAIN, DEADLETTER = "logs-eventtrail-default", "logs-eventtrail.deadletter-default"


def routed(config, body):
    """Where each event of ``body`` (an event, or a list as the http input receives it) goes."""
    results = list(explain(config, body if isinstance(body, str) else json.dumps(body)))
    for result in results:
        assert result.hazards == [], result.hazards
    return results


def with_event(**fields):
    return {**VALID, "event": {**VALID["event"], **fields}}


@pytest.mark.parametrize("body, reason", [
    ("{not json", "_jsonparsefailure"),
    ({**VALID, "@timestamp": "yesterday"}, "_timestampparsefailure"),
    ({**VALID, "tags": {"a": 1}}, "_tagsparsefailure"),
    ({**VALID, "event": {"id": UUID}}, "_eventtrail_bad_field:event.action"),
    (with_event(action=7), "_eventtrail_bad_field:event.action"),
    (with_event(action={"a": "b"}), "_eventtrail_bad_field:event.action"),
    (with_event(action=" "), "_eventtrail_bad_field:event.action"),
    ({**VALID, "event": "article.view"}, "_eventtrail_bad_field:event.action"),
    ({**VALID, "event": {"action": "page.view"}}, "_eventtrail_bad_field:event.id"),
    (with_event(id="garbage\n" + UUID), "_eventtrail_bad_field:event.id"),
    (with_event(id=UUID + "\n"), "_eventtrail_bad_field:event.id"),
    (with_event(id=UUID + "\ngarbage"), "_eventtrail_bad_field:event.id"),
    (with_event(id=UUID + "0"), "_eventtrail_bad_field:event.id"),
    (with_event(id="x" + UUID), "_eventtrail_bad_field:event.id"),
    (with_event(id=[UUID]), "_eventtrail_bad_field:event.id"),
    (with_event(id=42), "_eventtrail_bad_field:event.id"),
])
def test_invalid_events_are_dead_lettered_with_a_reason_never_dropped(config, body, reason):
    (result,) = routed(config, body)
    assert result.stream == DEADLETTER
    assert "_eventtrail_invalid" in result.tags and reason in result.tags
    assert "drop" not in {p.name for _, p in iter_plugins(config)}


def test_a_valid_event_reaches_every_enrichment_and_the_main_stream(config):
    (result,) = routed(config, VALID)
    assert result.stream == MAIN and result.tags == []
    assert {"useragent (eventtrail_useragent)", "geoip (eventtrail_geoip)",
            "ruby (eventtrail_ingested)"} <= set(result.filters)


@pytest.mark.parametrize("tags", [["bot", "_eventtrail_unrouted"], "security", []])
def test_a_senders_tags_are_dropped(config, tags):
    (result,) = routed(config, {**VALID, "tags": tags})
    assert result.stream == MAIN and result.tags == []


@pytest.mark.parametrize("original", [7, 0, True, False, [1], [False], {"a": 1}, [], "x" * 2049])
def test_a_user_agent_that_is_not_a_string_is_removed_and_tagged(config, original):
    (result,) = routed(config, {**VALID, "user_agent": {"original": original}})
    assert result.stream == MAIN
    assert result.tags == ["_eventtrail_bad_field:user_agent.original"]
    assert "original" not in result.event["user_agent"]
    assert "useragent (eventtrail_useragent)" not in result.filters


@pytest.mark.parametrize("child, value", [
    ("os", {"name": "spoofed"}), ("device", {"name": "Spider"}), ("version", "1"),
    ("name", "spoofed"), ("os", 5),
])
def test_enrichment_fields_a_sender_set_are_replaced_not_written_into(config, child, value):
    (result,) = routed(config, {**VALID, "user_agent": {**VALID["user_agent"], child: value},
                                "source": {"ip": "8.8.8.8", "geo": {"city_name": "x"}}})
    assert result.stream == MAIN and child not in result.event["user_agent"]
    assert "geo" not in result.event["source"]


@pytest.mark.parametrize("ip", [
    {"a": 1}, ["8.8.8.8"], [], 7, True, False, "", "example.com", "999.1.1.1", "1.2.3",
    "01.2.3.4", "8.8.8.8\n", "garbage\n8.8.8.8", ":::", "1::2::3", "fe80::1%eth0",
])
def test_a_source_ip_that_is_not_an_ip_literal_is_removed_and_tagged(config, ip):
    (result,) = routed(config, {**VALID, "source": {"ip": ip}})
    assert result.stream == MAIN and result.tags == ["_eventtrail_bad_field:source.ip"]
    assert "ip" not in result.event["source"]
    assert "geoip (eventtrail_geoip)" not in result.filters


def ip_literal_pattern(config):
    def literal(e):  # the guard's test, not the private-range test of the geoip branch
        return (isinstance(e, Match) and is_field(e.subject, "source.ip")
                and "25[0-5]" in e.pattern.pattern)
    clause, _ = clause_where(config, literal)
    (match,) = [p for p in parts(clause.condition) if literal(p)]
    return ruby_regex(match.pattern.pattern)


@settings(max_examples=300, deadline=None)
@given(address=st.ip_addresses())
def test_the_ip_guard_keeps_every_ip_literal_python_writes(config, address):
    pattern = ip_literal_pattern(config)
    assert pattern.search(str(address))
    if address.version == 6:
        assert pattern.search(address.exploded)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789abcdefABCDEF:.x% \n", max_size=45))
def test_the_ip_guard_keeps_only_what_python_reads_as_an_ip(config, text):
    import ipaddress

    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    kept = bool(ip_literal_pattern(config).search(text))
    if kept:
        assert address is not None, text
    elif address is not None:
        # Refused although Python reads it: a scope id (fe80::1%eth0), or a rare spelling of
        # IPv6 with an IPv4 tail. Such a value is removed and tagged, never a crash.
        assert "%" in text or "." in text, text


@pytest.mark.parametrize("ip, looked_up", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("10.1.2.3", False), ("127.0.0.1", False),
    ("192.168.1.1", False), ("172.16.0.1", False), ("::1", False), ("fd00::1", False),
    ("fe80::1", False), ("172.32.0.1", True),
])
def test_private_addresses_are_not_looked_up(config, ip, looked_up):
    (result,) = routed(config, {**VALID, "source": {"ip": ip}})
    assert ("geoip (eventtrail_geoip)" in result.filters) is looked_up
    assert result.tags == []


def test_bots_are_flagged_and_tagged(config):
    bot, branch = clause_where(config, compares("user_agent.device.name", "==", "Spider"))
    (flag,) = plugins(bot.body, "mutate")
    assert options(flag)["replace"] == {"[eventtrail][bot]": "true"}
    assert options(flag)["convert"] == {"[eventtrail][bot]": "boolean"}
    assert "bot" in options(flag)["add_tag"]
    # Every other valid event is flagged false, so the dashboards can count both.
    human = branch.clauses[-1]
    assert human.condition is None and len(branch.clauses) == 2
    (flag,) = plugins(human.body, "mutate")
    assert options(flag)["replace"] == {"[eventtrail][bot]": "false"}
    assert options(flag)["convert"] == {"[eventtrail][bot]": "boolean"}
    assert "bot" not in options(flag).get("add_tag", [])


def test_enrichment_targets_ecs_fields(config):
    useragent = options(the_plugin(config, "filter", "useragent"))
    assert (useragent["source"], useragent["target"]) == ("[user_agent][original]", "user_agent")
    geoip = options(the_plugin(config, "filter", "geoip"))
    assert (geoip["source"], geoip["target"]) == ("[source][ip]", "source")
    (ingested,) = [options(p) for _, p in iter_plugins(config)
                   if p.name == "ruby" and "code" in options(p)]
    assert 'event.set("[event][ingested]"' in ingested["code"]


# --- event types ---------------------------------------------------------------------------------


def test_the_event_types_section_is_marked_once(config):
    assert len([c for c in config.comments if MARKER in c.text]) == 1


def test_every_registered_event_type_is_routed_by_name_in_that_section(config):
    actions = registry.actions()
    assert {"article.search", "user.login_failed"} <= actions
    routing = routing_branch(config)
    named = set().union(*(actions_named(c.condition) for c in routing.clauses[:-1]))
    assert actions - named == set()
    # Whatever nobody has routed yet is tagged, so it shows up in Kibana.
    assert tags_added(routing.clauses[-1].body) == {"_eventtrail_unrouted"}


def test_search_terms_are_kept_only_by_search_events(config):
    others, _ = clause_where(config, compares("event.action", "!=", "article.search"))
    assert any("[eventtrail][search][query]" in options(m).get("remove_field", [])
               for m in plugins(others.body, "mutate"))
    search, branch = clause_where(config, compares("event.action", "==", "article.search"))
    assert branch is routing_branch(config)
    assert "search" in tags_added(search.body)


def test_failed_logins_are_tagged_security(config):
    failed, branch = clause_where(config, compares("event.action", "==", "user.login_failed"))
    assert branch is routing_branch(config)
    assert "security" in tags_added(failed.body)


# --- output --------------------------------------------------------------------------------------


def test_events_are_written_once_under_their_own_id(config):
    _, events = outputs(config)
    assert events["document_id"] == "%{[event][id]}"
    assert events["action"] == "create"
    assert events["silence_errors_in_log"] == ["version_conflict_engine_exception"]
    assert events["data_stream"] == "true"
    assert events["data_stream_dataset"] == "eventtrail"
    assert events["data_stream_namespace"] == "${EVENTTRAIL_NAMESPACE:default}"


def test_dead_letters_go_to_their_own_stream_with_fresh_ids(config):
    dead, _ = outputs(config)
    assert dead["data_stream_dataset"] == schema.DEADLETTER_DATASET == "eventtrail.deadletter"
    assert dead["data_stream_namespace"] == "${EVENTTRAIL_NAMESPACE:default}"
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


# --- every check above can fail ------------------------------------------------------------------

# (check, text in the pipeline, what it becomes): each edit leaves valid LSCL that breaks exactly
# the promise its check holds.
BROKEN = [
    (test_http_input_decodes_every_body_as_json_without_copying_it,
     "additional_codecs => {}", 'additional_codecs => { "text/plain" => "plain" }'),
    (test_http_input_decodes_every_body_as_json_without_copying_it,
     'codec => json {\n      ecs_compatibility => disabled\n    }', "codec => json"),
    (test_inputs_listen_on_their_ports_and_http_authenticates_from_the_environment,
     "port => 5000", "port => 5001"),
    (test_inputs_listen_on_their_ports_and_http_authenticates_from_the_environment,
     'password => "${LOGSTASH_HTTP_PASSWORD}"', 'password => "changeme"'),
    (test_a_valid_event_reaches_every_enrichment_and_the_main_stream,
     "if [user_agent][original] =~ // {", "if [user_agent][original] == 1 {"),
    (test_bots_are_flagged_and_tagged,
     'add_tag => ["bot"]', 'add_tag => ["robot"]'),
    (test_bots_are_flagged_and_tagged,
     'replace => { "[eventtrail][bot]" => "false" }', ""),
    (test_enrichment_targets_ecs_fields,
     'target => "source"', 'target => "[source][geo]"'),
    (test_the_event_types_section_is_marked_once,
     "# Search terms are personal data",
     f"# {MARKER}, again\n    # Search terms are personal data"),
    (test_every_registered_event_type_is_routed_by_name_in_that_section,
     ', "page.view"]', "]"),
    # check_pipeline counts this as handling the types; this file wants each one by name.
    (test_every_registered_event_type_is_routed_by_name_in_that_section,
     'in ["user.login", "user.logout", "community.view", "community.join", "article.view", '
     '"article.create", "article.edit", "article.state_change", "page.view"]',
     "=~ /^(user\\.log(in|out)|community\\.(view|join)|article\\.(view|create|edit|state_change)"
     "|page\\.view)$/"),
    (test_every_registered_event_type_is_routed_by_name_in_that_section,
     'add_tag => ["_eventtrail_unrouted"]', 'add_tag => ["unknown"]'),
    (test_search_terms_are_kept_only_by_search_events,
     'remove_field => ["[eventtrail][search][query]"]', 'remove_field => ["[url][query]"]'),
    (test_failed_logins_are_tagged_security,
     'add_tag => ["security"]', 'add_tag => ["auth"]'),
    (test_events_are_written_once_under_their_own_id,
     'action => "create"', 'action => "index"'),
    (test_events_are_written_once_under_their_own_id,
     'document_id => "%{[event][id]}"', ""),
    (test_dead_letters_go_to_their_own_stream_with_fresh_ids,
     'data_stream_dataset => "eventtrail.deadletter"',
     'data_stream_dataset => "eventtrail.deadletter"\n      document_id => "%{[event][id]}"'),
    (test_dead_letters_go_to_their_own_stream_with_fresh_ids,
     'if "_eventtrail_invalid" in [tags] {\n    elasticsearch {',
     'if "_eventtrail_invalid" in [tags] or "bot" in [tags] {\n    elasticsearch {'),
]


@pytest.mark.parametrize(
    ("check", "old", "new"), BROKEN,
    ids=[f"{check.__name__.removeprefix('test_')}-{i}" for i, (check, _, _) in enumerate(BROKEN)])
def test_each_check_fails_on_a_pipeline_that_breaks_its_promise(check, old, new):
    text = PIPELINE.read_text()
    assert text.count(old) == 1, old
    broken = parse(text.replace(old, new))
    # A missing option or plugin fails at its lookup, as a KeyError or a failed unpacking.
    with pytest.raises((AssertionError, KeyError, ValueError)):
        check(broken)


# Edits that break the routing tests above: (test, its arguments, text, what it becomes).
BROKEN_ROUTES = [
    (test_invalid_events_are_dead_lettered_with_a_reason_never_dropped,
     (with_event(id=UUID + "\ngarbage"), "_eventtrail_bad_field:event.id"), "{12}\\z/", "{12}$/"),
    (test_invalid_events_are_dead_lettered_with_a_reason_never_dropped,
     (with_event(id=UUID + "0"), "_eventtrail_bad_field:event.id"),
     'add_tag => ["_eventtrail_invalid", "_eventtrail_bad_field:event.id"]',
     'add_tag => ["_eventtrail_bad_field:event.id"]'),
    (test_invalid_events_are_dead_lettered_with_a_reason_never_dropped,
     (with_event(action=7), "_eventtrail_bad_field:event.action"), "!~ /\\S/", "!~ /./ and [x]"),
    (test_a_senders_tags_are_dropped, (["bot"],), 'remove_field => ["tags"]', "remove_field => []"),
    (test_a_user_agent_that_is_not_a_string_is_removed_and_tagged, (7,),
     "[user_agent][original] !~ // or", "[user_agent][original] == 8 or"),
    (test_a_source_ip_that_is_not_an_ip_literal_is_removed_and_tagged, ("example.com",),
     'remove_field => ["[source][ip]"]', "remove_field => []"),
    (test_enrichment_fields_a_sender_set_are_replaced_not_written_into, ("os", {"name": "x"}),
     '"[user_agent][os]",\n', ""),
]


@pytest.mark.parametrize(("check", "args", "old", "new"), BROKEN_ROUTES,
                         ids=[f"{c.__name__.removeprefix('test_')}-{i}"
                              for i, (c, *_) in enumerate(BROKEN_ROUTES)])
def test_each_routing_check_fails_on_a_pipeline_that_breaks_it(check, args, old, new):
    text = PIPELINE.read_text()
    assert text.count(old) == 1, old
    with pytest.raises(AssertionError):
        check(parse(text.replace(old, new)), *args)
