"""The LSCL parser accepts what Logstash 9.5 accepts and rejects what it rejects, with locations."""
import pytest
from eventtrail.logstash.parser import (
    Array,
    Bareword,
    Branch,
    Compare,
    Condition,
    ConfigError,
    FieldRef,
    Hash,
    In,
    Match,
    Not,
    Number,
    Plugin,
    Regexp,
    String,
    iter_conditions,
    iter_field_refs,
    iter_plugins,
    parse,
    parse_file,
)


def plugin_of(text, section="filter"):
    """The first plugin of ``section { <text> }``."""
    config = parse(f"{section} {{\n{text}\n}}\n")
    return next(plugin for _, plugin in iter_plugins(config))


def value_of(text):
    return plugin_of(f"mutate {{ x => {text} }}").attributes[0].value


def condition_of(text):
    config = parse(f"filter {{\n  if {text} {{ drop {{}} }}\n}}\n")
    return next(iter_conditions(config))


def error_of(text):
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value


REALISTIC = r"""# Event Trail pipeline, as an operator would write it.
input {
  http {
    port => 8080
    ecs_compatibility => disabled
    request_headers_target_field => "[@metadata][headers]"
    codec => json { target => "[@metadata][doc]" }
    user => "${LOGSTASH_USER:eventtrail}"
  }
}

filter {
  if [event][action] in ["auth.login", "auth.logout"] and "bot" not in [tags] {
    mutate { add_field => { "[event][category]" => "authentication" } }
  } else if [event][action] =~ /^article\./ or [url][path] !~ "^/admin" {
    if ([http][response][status_code] >= 500 xor [event][outcome] == "failure") {
      mutate { add_tag => ["server_error_%{[http][response][status_code]}"] }
    }
  } else if !([eventtrail][bot]) and ![user][id] {
    drop { }
  } else {
    date { match => ["[@metadata][ts]", "ISO8601", "UNIX_MS"] target => "@timestamp" }
  }
}

output {
  elasticsearch {
    hosts => ["${ES_HOSTS:https://elasticsearch:9200}"]
    document_id => "%{[event][id]}"
    index => 'logs-eventtrail-default'
  }
} # no newline after this comment"""


# --- valid configurations --------------------------------------------------------------------


def test_realistic_pipeline_parses_into_sections_plugins_and_branches():
    config = parse(REALISTIC, source="pipeline.conf")
    assert [s.kind for s in config.sections] == ["input", "filter", "output"]
    assert [(kind, p.name) for kind, p in iter_plugins(config)] == [
        ("input", "http"), ("filter", "mutate"), ("filter", "mutate"), ("filter", "drop"),
        ("filter", "date"), ("output", "elasticsearch")]
    branch = config.sections[1].body[0]
    assert isinstance(branch, Branch)
    assert [c.keyword for c in branch.clauses] == ["if", "else if", "else if", "else"]
    assert [c.line for c in branch.clauses] == [13, 15, 19, 21]
    assert config.source == "pipeline.conf"


def test_comments_are_kept_with_their_lines_including_one_ending_the_file():
    config = parse(REALISTIC)
    assert [(c.line, c.text) for c in config.comments] == [
        (1, "# Event Trail pipeline, as an operator would write it."),
        (32, "# no newline after this comment")]


def test_plugin_attributes_keep_names_values_and_positions():
    http = next(p for _, p in iter_plugins(parse(REALISTIC)))
    assert [a.name for a in http.attributes] == [
        "port", "ecs_compatibility", "request_headers_target_field", "codec", "user"]
    port = http.attributes[0]
    assert (port.line, port.column) == (4, 5)
    assert port.value == Number(8080, "8080", 4, 13)
    assert http.get("ecs_compatibility") == Bareword("disabled", 5, 26)
    codec = http.get("codec")
    assert isinstance(codec, Plugin) and codec.name == "json"
    assert codec.get("target").value == "[@metadata][doc]"


def test_env_substitution_and_sprintf_stay_verbatim_in_values():
    http = next(p for _, p in iter_plugins(parse(REALISTIC)))
    assert http.get("user").value == "${LOGSTASH_USER:eventtrail}"
    es = [p for _, p in iter_plugins(parse(REALISTIC))][-1]
    assert es.get("document_id").value == "%{[event][id]}"
    assert es.get("hosts").items[0].value == "${ES_HOSTS:https://elasticsearch:9200}"


def test_conditions_become_typed_expressions():
    conditions = list(iter_conditions(parse(REALISTIC)))
    first = conditions[0]
    assert first.operators == ("and",)
    membership, negated = first.operands
    assert isinstance(membership, In) and not membership.negated
    assert membership.item == FieldRef("[event][action]", ("event", "action"), 13, 6)
    assert [i.value for i in membership.collection.items] == ["auth.login", "auth.logout"]
    assert isinstance(negated, In) and negated.negated and negated.item.value == "bot"

    second = conditions[1]
    regex, not_regex = second.operands
    assert isinstance(regex, Match) and regex.op == "=~"
    assert regex.pattern == Regexp(r"^article\.", r"/^article\./", 15, 32)
    assert isinstance(not_regex, Match) and not_regex.op == "!~"
    assert isinstance(not_regex.pattern, String) and not_regex.pattern.value == "^/admin"

    nested = conditions[2]
    inner = nested.operands[0]
    assert isinstance(inner, Condition) and inner.operators == ("xor",)
    assert isinstance(inner.operands[0], Compare) and inner.operands[0].op == ">="

    third = conditions[3]
    assert [type(o) for o in third.operands] == [Not, Not]
    assert isinstance(third.operands[0].operand, Condition)
    assert third.operands[1].operand.path == ("user", "id")


def test_field_refs_are_found_anywhere_in_a_condition():
    refs = [r.raw for c in iter_conditions(parse(REALISTIC)) for r in iter_field_refs(c)]
    assert refs == ["[event][action]", "[tags]", "[event][action]", "[url][path]",
                    "[http][response][status_code]", "[event][outcome]", "[eventtrail][bot]",
                    "[user][id]"]


def test_empty_and_comment_only_configurations_are_valid():
    assert parse("").sections == ()
    assert parse("# nothing here\n   # at all").comments[1].text == "# at all"


def test_sections_may_repeat_and_plugins_may_be_empty():
    config = parse("input{stdin{}}filter{}filter{drop{}}output{stdout{}}")
    assert [s.kind for s in config.sections] == ["input", "filter", "filter", "output"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"double"', String("double", '"double"', 2, 15)),
        ("'single'", String("single", "'single'", 2, 15)),
        ("42", Number(42, "42", 2, 15)),
        ("-3.5", Number(-3.5, "-3.5", 2, 15)),
        ("true", Bareword("true", 2, 15)),
        ("_ab", Bareword("_ab", 2, 15)),
    ],
)
def test_scalar_values(text, expected):
    assert value_of(text) == expected


def test_quotes_escaped_with_backslash_stay_raw_unless_escapes_are_enabled():
    text = r"""filter { mutate { a => "say \"hi\"\n" b => 'it\'s' c => "C:\temp" } }"""
    raw = plugin_of(text.removeprefix("filter { ").removesuffix(" }"))
    assert [a.value.value for a in raw.attributes] == [r"say \"hi\"\n", r"it\'s", r"C:\temp"]
    escaped = next(p for _, p in iter_plugins(parse(text, support_escapes=True)))
    assert [a.value.value for a in escaped.attributes] == ['say "hi"\n', "it's", "C:\temp"]


def test_a_string_cannot_end_with_a_backslash():
    # The grammar consumes backslash-quote as a pair, so the string runs on to the next quote.
    value = value_of(r'"C:\dir\" y => "')
    assert value.value == r'C:\dir\" y => '


def test_arrays_and_hashes_nest():
    value = value_of('[ "a", 1, ["b"], { "k" => "v" } ]')
    assert isinstance(value, Array)
    assert [type(i) for i in value.items] == [String, Number, Array, Hash]
    assert value_of("[]") == Array((), 2, 15)
    hash_ = value_of('{ 200 => "ok" name => x1 "quoted key" => [1, 2] }')
    assert [e.key_text for e in hash_.entries] == ["200", "name", '"quoted key"']


def test_comments_between_hash_entries_and_plugin_options():
    # Allowed in hashes since elastic/logstash#16058; always allowed between plugin options.
    plugin = plugin_of("""mutate {
      # before
      add_field => {
        "a" => "1" # after a value
        # between entries
        "b" => "2"
      }
      # between options
      remove_field => ["c"]
    }""")
    assert [e.key_text for e in plugin.attributes[0].value.entries] == ['"a"', '"b"']
    assert plugin.attributes[1].name == "remove_field"


def test_a_plugin_can_be_an_option_value_and_names_may_be_quoted():
    plugin = plugin_of('"http" { "port" => 1 codec => "json" { charset => "UTF-8" } }', "input")
    assert plugin.name == "http" and plugin.attributes[0].name == "port"
    assert plugin.get("codec").name == "json"


def test_options_need_no_space_around_the_arrow():
    assert plugin_of("mutate{a=>1 b=>[1,2]}").get("b").items[1].value == 2


def test_one_element_list_in_a_condition_is_a_field_reference():
    # Logstash's rvalue tries `selector` before `array`, so ["x"] is the field named "x".
    single = condition_of('[event][action] in ["article.view"]').operands[0]
    assert isinstance(single.collection, FieldRef)
    assert single.collection.path == ('"article.view"',)
    pair = condition_of('[event][action] in ["a", "b"]').operands[0]
    assert isinstance(pair.collection, Array)


@pytest.mark.parametrize("operator", ["==", "!=", "<", ">", "<=", ">="])
def test_comparison_operators(operator):
    compare = condition_of(f'[a] {operator} "x"').operands[0]
    assert compare.op == operator and compare.right.value == "x"


def test_not_in_needs_a_space_after_not_but_allows_more():
    assert condition_of('"x" not    in [tags]').operands[0].negated


@pytest.mark.parametrize("operator", ["and", "or", "xor", "nand"])
def test_single_boolean_operators(operator):
    assert condition_of(f"[a] {operator} [b]").operators == (operator,)


def test_xor_and_nand_are_fine_inside_their_own_parentheses():
    condition = condition_of("([a] xor [b]) and ([c] nand [d]) or [e]")
    assert condition.operators == ("and", "or")


def test_else_and_if_may_touch():
    # "else" cs "if": the optional whitespace may be empty.
    config = parse("filter { if [a] { drop {} } elseif [b] { drop {} } }")
    assert [c.keyword for c in config.sections[0].body[0].clauses] == ["if", "else if"]


def test_selectors_allow_metadata_and_spaces():
    ref = condition_of("[@metadata][my field]").operands[0]
    assert ref.path == ("@metadata", "my field")


def test_parse_file_reads_a_file_and_names_it(tmp_path):
    path = tmp_path / "p.conf"
    path.write_text("output { stdout {} }\n")
    assert parse_file(path).source == str(path)


# --- invalid configurations ------------------------------------------------------------------


def test_commas_between_plugin_options_are_an_error():
    error = error_of('filter {\n  mutate {\n    a => "1",\n    b => "2"\n  }\n}\n')
    assert (error.line, error.column) == (3, 13)
    assert "commas are not allowed between plugin options" in error.message
    assert str(error).startswith("line 3, column 13: ")


def test_commas_between_hash_entries_are_an_error():
    error = error_of('filter { mutate { add_field => { "a" => "1", "b" => "2" } } }')
    assert error.column == 44 and "between hash entries" in error.message


def test_one_character_barewords_are_an_error():
    error = error_of("filter {\n  mutate { x => a }\n}")
    assert (error.line, error.column) == (2, 17)
    assert "one-character bareword" in error.message and '"a"' in error.message
    assert "quote the key" in error_of('filter { mutate { x => { a => "1" } } }').message
    assert value_of("ab") == Bareword("ab", 2, 15)


def test_barewords_cannot_be_operands_in_conditions():
    error = error_of("filter { if [a] == foo { drop {} } }")
    assert error.column == 20 and "bareword `foo` cannot be an operand" in error.message
    assert "boolean literals" in error_of("filter { if [a] == true { drop {} } }").message
    assert "bareword `x`" in error_of("filter { if x in [tags] { drop {} } }").message


@pytest.mark.parametrize(
    "condition",
    ["[a] and [b] xor [c]", "[a] xor [b] or [c]", "[a] nand [b] and [c]", "[a] or [b] nand [c]",
     # precedence() knows only `and` and `or`, so even a chain of xor fails in Logstash.
     "[a] xor [b] xor [c]"],
)
def test_xor_and_nand_mixed_with_other_operators_need_parentheses(condition):
    error = error_of(f"filter {{\n  if {condition} {{ drop {{}} }}\n}}")
    assert (error.line, error.column) == (2, 6)
    assert "cannot share a level with another boolean operator" in error.message


def test_parenthesised_levels_are_checked_on_their_own():
    error = error_of("filter { if [x] and ([a] xor [b] and [c]) { drop {} } }")
    assert error.column == 22


def test_duplicate_hash_keys_are_an_error():
    text = 'filter {\n  mutate { add_field => {\n    "a" => "1"\n    "a" => "2"\n  } }\n}'
    error = error_of(text)
    assert (error.line, error.column) == (4, 5)
    assert 'duplicate key "a"' in error.message and "line 3" in error.message


def test_duplicate_keys_are_compared_as_written_and_per_hash():
    # Hash#find_duplicate_keys compares each key's source text, hash by hash.
    assert len(value_of("{ \"a\" => 1 'a' => 2 }").entries) == 2
    assert len(value_of('{ "x" => { "k" => 1 } "y" => { "k" => 2 } }').entries) == 2


def test_duplicate_plugin_options_are_not_a_syntax_error():
    # Logstash merges repeated options (lscl.rb expr_attributes); the checker warns instead.
    assert len(plugin_of('mutate { add_tag => ["a"] add_tag => ["b"] }').attributes) == 2


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ('filter { mutate { x => "open }\n}\n', "this string is never closed", 1, 24),
        ("filter { if [a] =~ /open { drop {} } }", "regular expression is never closed", 1, 20),
        ("filter { if [a] && [b] { drop {} } }", "use `and`, not `&&`", 1, 17),
        ("filter { if [a] || [b] { drop {} } }", "use `or`, not `||`", 1, 17),
        ('filter { if [a] = "x" { drop {} } }', "use `==` to compare", 1, 17),
        ("filter { if [a] { drop {} } elsif [b] { drop {} } }", "`else if`", 1, 29),
        ("filter { mutate { x => [1, 2, ] } }", "a list cannot end with a comma", 1, 29),
        ('filter { if "x" { drop {} } }', "a literal value cannot be a condition", 1, 13),
        ("filter { if [a] and 1 { drop {} } }", "a literal value cannot be a condition", 1, 21),
        ("filter { if foo([a]) { drop {} } }", "not implemented by Logstash's compiler", 1, 13),
        ("filter { mutate { x => 1. } }", "`1.` is not a number", 1, 24),
        ('filter { if [a] == ["x", "y"] { drop {} } }', "use `in`", 1, 20),
        ('filter { if "x" =~ /y/ { drop {} } }', "must be a field reference", 1, 13),
        ("inputs { stdin {} }", "unexpected 's'", 1, 6),
        ("filter { mutate { } ", "unexpected end of input", 1, 21),
        ("filter { mutate { a => 1 } } }", "unexpected '}'", 1, 30),
    ],
)
def test_invalid_configurations_name_the_problem_and_place(text, message, line, column):
    error = error_of(text)
    assert message in error.message
    assert (error.line, error.column) == (line, column)


def test_not_in_with_a_tab_instead_of_a_space_is_an_error():
    # The grammar's not_in_operator is the literal "not " followed by optional whitespace.
    error_of('filter { if "x" not\tin [tags] { drop {} } }')


def test_a_comment_glued_to_an_option_value_ends_the_options():
    # Plugin options are separated by `whitespace cs`: the comment alone is not whitespace.
    error = error_of("input {\n  tcp {\n    port => 5000# main\n    mode => server\n  }\n}")
    assert (error.line, error.column) == (4, 5)
    assert plugin_of("tcp {\n port => 5000 # main\n mode => server\n}", "input").get("mode")


def test_errors_carry_the_source_name():
    with pytest.raises(ConfigError) as caught:
        parse("filter { x }", source="10-filter.conf")
    assert str(caught.value).startswith("10-filter.conf: line 1, column 12: ")
    assert caught.value.source == "10-filter.conf"
