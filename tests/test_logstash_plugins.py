"""The plugin table says what Logstash 9.5 bundles, which options it takes, and from where."""
import json
from importlib import resources

import pytest
from eventtrail.logstash.plugins import KINDS, PluginTable, table

# The plugins an Event Trail pipeline plausibly uses (issue 7); each needs an option table.
EXPECTED = {
    "input": {"http", "tcp", "beats", "dead_letter_queue"},
    "codec": {"json", "json_lines", "plain", "line"},
    "filter": {"json", "date", "useragent", "geoip", "mutate", "ruby", "fingerprint",
               "translate", "drop", "prune"},
    "output": {"elasticsearch", "stdout"},
}


def raw_table():
    path = resources.files("eventtrail.logstash").joinpath("plugins.json")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, ns in EXPECTED.items() for n in ns])
def test_expected_plugins_are_bundled_and_have_option_tables(kind, name):
    assert table().is_bundled(kind, name)
    spec = table().spec(kind, name)
    assert spec is not None and spec.kind == kind and spec.version


def test_every_plugin_entry_says_where_its_facts_came_from():
    for kind, plugins in raw_table()["plugins"].items():
        for name, entry in plugins.items():
            where = entry["options_source"]
            assert where["repo"] and where["file"] and len(where["commit"]) == 40, (kind, name)
            assert entry["version"]["value"] and entry["version"]["source"], (kind, name)
            assert entry["gem"].startswith("logstash-"), (kind, name)


def test_bundled_versions_are_those_of_logstash_9_5():
    versions = {(s.kind, s.name): s.version for s in table().specs()}
    assert versions[("input", "http")] == "4.1.11"
    assert versions[("input", "tcp")] == "7.0.11"
    assert versions[("output", "elasticsearch")] == "12.1.6"
    assert versions[("filter", "date")] == "3.2.0"


@pytest.mark.parametrize(
    ("kind", "name", "option", "replacement"),
    [
        ("input", "http", "ssl", "ssl_enabled"),
        ("input", "http", "ssl_verify_mode", "ssl_client_authentication"),
        ("input", "http", "keystore", "ssl_keystore_path"),
        ("input", "beats", "ssl", "ssl_enabled"),
        ("input", "beats", "ssl_verify_mode", "ssl_client_authentication"),
        ("input", "tcp", "ssl_enable", "ssl_enabled"),
        ("input", "tcp", "ssl_cert", "ssl_certificate"),
        ("output", "elasticsearch", "ssl", "ssl_enabled"),
        ("output", "elasticsearch", "ssl_certificate_verification", "ssl_verification_mode"),
        ("output", "elasticsearch", "cacert", "ssl_certificate_authorities"),
    ],
)
def test_ssl_names_logstash_9_made_obsolete(kind, name, option, replacement):
    spec = table().spec(kind, name).options[option]
    assert spec.obsolete and replacement in spec.obsolete
    assert replacement in table().spec(kind, name).options


def test_common_options_apply_to_every_plugin_of_a_kind():
    filter_options = table().spec("filter", "drop").options
    assert {"add_field", "add_tag", "remove_field", "remove_tag", "id", "periodic_flush",
            "enable_metric", "ecs_compatibility"} <= set(filter_options)
    assert filter_options["tags"].obsolete  # filters and outputs cannot set tags directly
    input_options = table().spec("input", "dead_letter_queue").options
    assert {"id", "enable_metric", "codec", "tags", "type", "add_field"} <= set(input_options)
    assert not input_options["tags"].obsolete
    output_options = table().spec("output", "stdout").options
    assert {"codec", "id", "enable_metric", "workers"} <= set(output_options)
    assert output_options["workers"].deprecated


def test_options_added_after_the_docs_that_were_read():
    assert table().spec("filter", "date").options["precision"].added == "3.2.0"
    assert table().spec("filter", "translate").options["yaml_load_strategy"].added == "3.5.0"
    assert table().spec("output", "elasticsearch").options["drop_error_types"].added == "12.1.1"


def test_required_options_and_field_roles():
    tcp = table().spec("input", "tcp").options
    assert tcp["port"].required
    mutate = table().spec("filter", "mutate").options
    assert mutate["rename"].field == "hash_keys_values"
    assert mutate["remove_field"].field == "fields"
    assert not table().spec("filter", "ruby").options["code"].sprintf


def test_plugins_that_9_5_does_not_bundle():
    # Logstash 9.5 removed the pipe output from the default bundle (elastic/logstash#19159).
    assert not table().is_bundled("output", "pipe")
    assert table().unbundled_gem("output", "pipe") == "logstash-output-pipe"
    assert not table().is_bundled("filter", "grokk")
    assert table().unbundled_gem("filter", "grokk") is None


def test_integration_and_core_plugins_are_bundled_and_aliases_resolve():
    assert table().is_bundled("input", "kafka")  # from logstash-integration-kafka
    assert table().is_bundled("filter", "jdbc_static")
    assert table().is_bundled("output", "pipeline")  # built into logstash-core
    assert table().is_bundled("input", "elastic_agent")
    assert table().spec("input", "elastic_agent").name == "beats"


def test_a_table_with_an_unknown_option_key_is_refused():
    data = raw_table()
    data["plugins"]["filter"]["drop"]["options"]["percentage"] = {"requried": True}
    with pytest.raises(ValueError, match="unknown keys"):
        PluginTable(data)


def test_every_kind_has_a_bundled_list():
    assert all(table().bundled(kind) for kind in KINDS)
