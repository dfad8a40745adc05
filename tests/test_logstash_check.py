"""The pipeline checker finds every kind of problem the issue names, with file and line."""
from pathlib import Path

import pytest
from eventtrail.logstash import PIPELINE_FIELDS, Problem, check_pipeline, pipeline_files
from eventtrail.schema import BY_NAME

FIXTURES = Path(__file__).parent / "fixtures" / "logstash"
FIELDS = set(BY_NAME)
ACTIONS = {"auth.login", "auth.login_failed", "article.view", "article.edit", "community.view",
           "browser.scroll"}


def check(source, fields=FIELDS, actions=frozenset(), **kwargs):
    return check_pipeline(source, fields=fields, actions=actions, **kwargs)


def located(problems):
    """(line, message) of problems that have a place in a file."""
    return [(p.line, p.message) for p in problems if p.line is not None]


def only(problems):
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --- sound pipelines ---------------------------------------------------------------------------


def test_the_realistic_fixture_is_sound_against_the_real_event_schema():
    assert check(FIXTURES / "good.conf", actions=ACTIONS) == []


def test_a_directory_is_one_pipeline_whose_files_parse_separately():
    handled = {"auth.login", "article.view", "article.edit"}
    directory = FIXTURES / "split"
    assert check(directory, actions=handled) == []
    assert check(sorted(directory.iterdir()), actions=handled) == []
    assert [p.name for p in pipeline_files(directory)] == [
        "10-input.conf", "20-filter.conf", "30-output.conf"]


def test_text_is_checked_under_the_given_name():
    problem = only(check("filter { mutate { add_tag => [\"x\"] } }", actions={"a.b"}, name="t"))
    assert (problem.file, problem.line) == ("t", None)


# --- it parses ---------------------------------------------------------------------------------


def test_a_syntax_error_is_reported_with_file_line_and_column():
    problem = only(check(FIXTURES / "bad_syntax.conf", actions=ACTIONS))
    assert problem.file == str(FIXTURES / "bad_syntax.conf")
    assert (problem.line, problem.column) == (3, 17)
    assert "commas are not allowed" in problem.message
    # With a file unparsed, coverage of event types is unknown, so none is reported missing.
    assert str(problem) == f"{problem.file}:3:17: {problem.message}"


def test_a_missing_file_is_a_problem(tmp_path):
    problem = only(check(tmp_path / "nope.conf"))
    assert problem.line is None and "cannot read" in problem.message


def test_an_empty_directory_is_a_problem(tmp_path):
    assert only(check(tmp_path)).message == "no pipeline files found"


# --- plugins and options ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_problems():
    return check(FIXTURES / "bad_plugins.conf")


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (2, "input plugin `imap` (logstash-input-imap) is not bundled with Logstash 9.5"),
        (13, "unknown filter plugin `grokk`: Logstash 9.5 bundles no filter plugin of that name "
             "(did you mean `grok`?)"),
        (26, "output plugin `pipe` (logstash-output-pipe) is not bundled with Logstash 9.5"),
    ],
)
def test_plugins_must_be_bundled_with_logstash_9_5(plugin_problems, line, text):
    assert any(n == line and text in m for n, m in located(plugin_problems))


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (6, "option `ssl` is obsolete in logstash-input-http 4.1.11, which refuses to start: "
            "Set 'ssl_enabled' instead."),
        (21, "option `ssl_certificate_verification` is obsolete in logstash-output-elasticsearch "
             "12.1.6"),
        (22, "option `cacert` is obsolete"),
        (14, "filter plugin `mutate` (logstash-filter-mutate 3.6.0) has no option `add_fields` "
             "(did you mean `add_field`?)"),
        (24, "codec plugin `plain` (logstash-codec-plain 3.1.0) has no option `formatt`"),
        (3, "input plugin `tcp` (logstash-input-tcp 7.0.11) requires option `port`"),
        (15, "filter plugin `kv` is bundled with Logstash 9.5, but "
             "eventtrail/logstash/plugins.json has no option table for it"),
    ],
)
def test_options_must_exist_and_not_be_obsolete(plugin_problems, line, text):
    assert any(n == line and text in m for n, m in located(plugin_problems))


def test_deprecated_and_repeated_options_are_warnings(plugin_problems):
    warnings = [(p.line, p.message) for p in plugin_problems if p.level == "warning"]
    assert warnings == [
        (16, "option `match` is given twice (first at line 16); Logstash merges the values"),
        (23, "option `http_compression` of output plugin `elasticsearch` "
             "(logstash-output-elasticsearch 12.1.6) is deprecated: Set 'compression_level' "
             "instead."),
    ]
    assert all(p.level == "error" for p in plugin_problems if (p.line, p.message) not in warnings)


def test_no_other_plugin_problems_are_invented(plugin_problems):
    assert len(located(plugin_problems)) == 12


def test_a_codec_named_by_a_string_must_be_bundled():
    problem = only(check('input { http { port => 1 ecs_compatibility => disabled codec => "avroo" '
                         'remote_host_target_field => "[@metadata][h]" '
                         'request_headers_target_field => "[@metadata][r]" } }'))
    assert problem.message.startswith("unknown codec plugin `avroo`")


def test_additional_codecs_values_are_codec_names():
    problem = only(check('input { http { port => 1 ecs_compatibility => disabled '
                         'additional_codecs => { "application/json" => "jsonn" } '
                         'remote_host_target_field => "[@metadata][h]" '
                         'request_headers_target_field => "[@metadata][r]" } }'))
    assert "codec plugin `jsonn`" in problem.message


def test_a_deprecated_alias_satisfies_a_required_option():
    assert [p.level for p in check('filter { translate { field => "message" } }')] == ["warning"]


# --- fields --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def field_problems():
    return check(FIXTURES / "bad_fields.conf")


def test_unknown_fields_are_reported_where_they_are_used(field_problems):
    assert located(field_problems) == [
        (2, "field `[event][acton]` is not in the event schema (did you mean `[event][action]`?)"),
        (5, '`["article.view"]` is a field reference to a field named "article.view", not a list: '
            "Logstash reads a one-element list in a condition as a field reference. Compare with "
            "`==`, or list two or more values"),
        (6, "field `[eventtrail][target][kind]` is not in the event schema (did you mean "
            "`[eventtrail][target][id]`?)"),
        (8, '`[event.action]` names a field literally called "event.action": Logstash does not '
            "split field names on dots, so write [event][action]"),
        (9, "field `[headers]` is not in the event schema"),
        (9, "field `host` is not in the event schema"),
        (11, "field `agent` is not in the event schema"),
        (12, "field `[event][verb]` in `%{[event][verb]}` is not in the event schema"),
        (18, "field `[event][uuid]` in `%{[event][uuid]}` is not in the event schema (did you mean "
             "`[event][id]`?)"),
    ]


def test_metadata_objects_and_the_pipeline_allowlist_are_accepted():
    text = """filter {
      if [@metadata][anything][at][all] and [user_agent][os] and [@version] {
        mutate {
          remove_field => ["[event][original]", "tags", "@timestamp", "message"]
          rename => { "[@metadata][x]" => "[source]" }
          add_field => { "[@metadata][y]" => "%{+yyyy.MM.dd} %{{HH:mm}} ${HOME}" }
        }
      }
    }"""
    assert check(text) == []
    assert {"@timestamp", "@version", "message", "tags", "event.original"} == PIPELINE_FIELDS


def test_field_valued_options_are_read_by_role():
    text = """filter {
      date { match => ["[eventtrail][when]", "ISO8601"] target => "[event][created]" }
      mutate {
        gsub => ["[url][path]", "/", "_", "[url][paths]", "x", "y"]
        copy => { "[url][path]" => "[url][full]" }
        split => { "[user][roles]" => "," }
      }
      fingerprint { source => ["[user][id]", "[user][nick]"] target => "[@metadata][fp]" }
    }"""
    assert [m for _, m in located(check(text))] == [
        "field `[eventtrail][when]` is not in the event schema",
        "field `[event][created]` is not in the event schema",
        "field `[url][paths]` is not in the event schema (did you mean `[url][path]`?)",
        "field `[url][full]` is not in the event schema",
        "field `[user][nick]` is not in the event schema",
    ]


def test_malformed_field_references_are_reported():
    messages = [m for _, m in located(check('filter { mutate { remove_field => ["a[b]", "[a]b"] '
                                             'add_tag => ["%{[x}"] } }'))]
    assert messages == [
        "`a[b]` is not a valid field reference; put every part in brackets, as in [a][b]",
        "`[a]b` is not a valid field reference; write it as [a][b]",
        "in %{[x}: `[x` is not a valid field reference; write it as [a][b]",
    ]


def test_any_field_set_can_be_given():
    assert located(check("filter { if [a][b] { drop {} } }", fields={"a.b"})) == []
    assert len(located(check("filter { if [a][b] { drop {} } }", fields={"c"}))) == 1


# --- what inputs write by themselves ------------------------------------------------------------


def test_http_in_ecs_mode_overwrites_url_path_and_user_agent():
    problems = located(check(FIXTURES / "bad_inputs.conf"))
    http = "input plugin `http` (logstash-input-http 4.1.11)"
    default = "with ecs_compatibility v8 (the default of pipeline.ecs_compatibility)"
    assert (3, f"{http} {default} writes [user_agent][original], [url][path] on every event, "
               "overwriting the event's own values with the delivery's; set ecs_compatibility "
               "=> disabled") in problems
    assert (3, f"{http} {default} adds fields that are not in the event schema: [http][version], "
               "[url][domain], [url][port], [http][method], [http][request][body][bytes], "
               "[http][request][mime_type], [host][ip] (set remote_host_target_field under "
               "[@metadata]); set ecs_compatibility => disabled") in problems
    assert (5, f"{http} with ecs_compatibility disabled adds fields that are not in the event "
               "schema: [host] (set remote_host_target_field under [@metadata]), [headers] (set "
               "request_headers_target_field under [@metadata])") in problems
    assert (7, "input plugin `tcp` (logstash-input-tcp 7.0.11) with ecs_compatibility disabled "
               "adds fields that are not in the event schema: [host], [port]") in problems
    assert len(problems) == 4


def test_a_target_pointing_into_the_schema_overwrites_it():
    text = ('input { http { port => 1 ecs_compatibility => disabled '
            'remote_host_target_field => "[source][ip]" '
            'request_headers_target_field => "[@metadata][headers]" } }')
    assert "writes [source][ip] on every event" in only(check(text)).message


def test_an_ecs_mode_from_the_environment_is_not_guessed():
    assert check('input { http { port => 1 ecs_compatibility => "${ECS:disabled}" } }') == []


def test_tcp_in_ecs_mode_keeps_connection_data_in_metadata():
    assert check("input { tcp { port => 5000 codec => json_lines } }") == []


# --- event types ---------------------------------------------------------------------------------


def test_every_event_type_must_be_handled():
    problems = check(FIXTURES / "split", actions=ACTIONS)
    assert [(p.file, p.line, p.message) for p in problems] == [
        (str(FIXTURES / "split"), None,
         f'event type `{action}` is not handled: no condition on [event][action] matches it '
         f'(== "{action}", in [...] or =~ /.../)')
        for action in ["auth.login_failed", "browser.scroll", "community.view"]]


@pytest.mark.parametrize(
    "condition",
    ['[event][action] == "a.b"', '"a.b" == [event][action]', '[event][action] in ["x", "a.b"]',
     "[event][action] =~ /^a\\./", '[event][action] =~ "b$"',
     '[user][id] and [event][action] == "a.b"',
     '!(!([event][action] == "a.b"))'],
)
def test_ways_to_handle_an_event_type(condition):
    problems = check(f"filter {{ if {condition} {{ drop {{}} }} }}", actions={"a.b"})
    assert [p for p in problems if p.level == "error"] == []


def test_comparing_the_action_with_an_unregistered_name_is_a_warning():
    problems = check('filter {\n if [event][action] in ["artcle.view", "article.edit"] '
                     '{ drop {} }\n}', actions={"article.view", "article.edit"})
    assert [(p.line, p.column, p.level, p.message) for p in problems] == [
        (2, 25, "warning", "[event][action] is compared with `artcle.view`, which is not a "
                           "registered event type (did you mean `article.view`?)"),
        (None, None, "error", 'event type `article.view` is not handled: no condition on '
                              '[event][action] matches it (== "article.view", in [...] or =~ '
                              '/.../)'),
    ]


@pytest.mark.parametrize(
    "condition",
    ['[event][action] != "a.b"', '[event][action] not in ["a.b", "c"]', '[event][action] !~ /a/',
     '!([event][action] == "a.b")', '[event][kind] == "a.b"', '[event][action] =~ /^b/'],
)
def test_conditions_that_do_not_handle_an_event_type(condition):
    problems = check(f"filter {{ if {condition} {{ drop {{}} }} }}", actions={"a.b"})
    assert [p.message.split(":")[0] for p in problems] == ["event type `a.b` is not handled"]


def test_problems_print_as_file_line_column_and_sort_whole_pipeline_last():
    problems = [Problem("p.conf", None, "late"), Problem("p.conf", 2, "b", 5, "warning"),
                Problem("p.conf", 1, "a")]
    assert [str(p) for p in sorted(problems, key=Problem.sort_key)] == [
        "p.conf:1: a", "p.conf:2:5: warning: b", "p.conf: late"]
