"""The Kibana saved objects: valid NDJSON, only mapped fields, the provisioned data view."""
import copy
import fnmatch
import functools
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from eventtrail import schema
from eventtrail.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
NDJSON = ROOT / "kibana" / "dashboards" / "eventtrail.ndjson"
SCRIPT = ROOT / "kibana" / "build_dashboards.py"
DATA_VIEW_ID = "eventtrail-events"

# Read from Kibana's sample data sets (elastic/kibana, src/platform/plugins/shared/home/server/
# services/sample_data/data_sets/{ecommerce,flights,logs}/saved_objects.ts): every object has
# coreMigrationVersion 8.8.0, dashboards 8.7.0, the eCommerce data view 7.11.0 (the last entry of
# index_pattern_migrations.ts; data views have no model versions).
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {"index-pattern": "7.11.0", "dashboard": "8.7.0"}

# Attributes Kibana stores as JSON text rather than as objects.
EMBEDDED_JSON = {
    "index-pattern": ["fieldAttrs", "fieldFormatMap", "fields", "runtimeFieldMap",
                      "sourceFilters", "typeMeta"],
    "dashboard": ["panelsJSON", "optionsJSON", "kibanaSavedObjectMeta.searchSourceJSON"],
}

EXPECTED_PANELS = {
    "eventtrail-activity-overview": {
        "Events", "Active users", "Sessions", "Communities with activity",
        "Events over time by action", "Top communities", "Active users over time",
    },
    "eventtrail-content": {
        "Most viewed articles", "Trending articles (views in the last 10 days)",
        "Article edits over time", "Article state changes by new state",
        "Reading depth", "Video completion",
    },
    "eventtrail-users": {
        "Logins", "Failed logins", "Users who logged in", "Logins over time",
        "Failed logins over time", "Failed logins by client IP",
        "Active users vs. one week earlier (proxy for new vs returning)",
    },
    "eventtrail-site-health": {
        "Responses by status class", "Top status codes",
        "Server time percentiles (event.duration, nanoseconds)", "User agents",
        "Bots vs humans", "Top bots",
    },
}

# What the index template maps, which is what Kibana will see.
MAPPED = dict(schema.walk_mapping(schema.mappings()["properties"]))

NUMERIC = {"long", "float"}
AGGREGATABLE = {"keyword", "constant_keyword", "ip", "long", "float", "boolean", "date"}
# Field types each Lens operation accepts.
FIT = {
    "date_histogram": {"date"},
    "terms": AGGREGATABLE - {"date"},
    "unique_count": AGGREGATABLE,
    "percentile": NUMERIC,
    "median": NUMERIC,
    "average": NUMERIC,
    "sum": NUMERIC,
    "min": NUMERIC | {"date"},
    "max": NUMERIC | {"date"},
}
RANGE_TYPES = NUMERIC | {"date"}


@functools.cache
def load_builder():
    spec = importlib.util.spec_from_file_location("build_dashboards", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def saved_objects():
    return [json.loads(line) for line in NDJSON.read_text().splitlines()]


def by_type(objects, type_):
    return {o["id"]: o for o in objects if o["type"] == type_}


def panels(dashboard):
    return json.loads(dashboard["attributes"]["panelsJSON"])


def dotted(mapping, path):
    for part in path.split("."):
        mapping = mapping[part]
    return mapping


# --- finding the fields an object uses ------------------------------------------------------

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_FIELD_OP = re.compile(r"([A-Za-z_@][\w.@]*)\s*(<=|>=|<|>|:)")


def kql_fields(query):
    """(field, operator) pairs of a KQL query; values in quotes are never taken for fields."""
    return _FIELD_OP.findall(_QUOTED.sub('""', query))


def field_uses(tree):
    """Yield (field, use): a Lens operation, 'kql', 'kql-range' or 'time', anywhere in ``tree``."""
    if isinstance(tree, dict):
        if "operationType" in tree and tree.get("sourceField", "___records___") != "___records___":
            yield tree["sourceField"], tree["operationType"]
        if tree.get("language") == "kuery" and isinstance(tree.get("query"), str):
            for name, op in kql_fields(tree["query"]):
                yield name, "kql" if op == ":" else "kql-range"
        for key in ("timeFieldName", "timeField"):
            if isinstance(tree.get(key), str):
                yield tree[key], "time"
        for value in tree.values():
            yield from field_uses(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from field_uses(value)


def object_trees(obj):
    """The object itself, with every embedded JSON string parsed."""
    trees = [obj["attributes"]]
    for path in EMBEDDED_JSON.get(obj["type"], []):
        trees.append(json.loads(dotted(obj["attributes"], path)))
    return trees


def field_problems(objects):
    problems = []
    for obj in objects:
        for tree in object_trees(obj):
            for name, use in field_uses(tree):
                where = f"{obj['id']}: {name} ({use})"
                ftype = MAPPED.get(name)
                if ftype is None:
                    problems.append(f"{where}: not a mapped field")
                elif use == "time" and ftype != "date":
                    problems.append(f"{where}: {ftype} is not a date")
                elif use == "kql-range" and ftype not in RANGE_TYPES:
                    problems.append(f"{where}: a range on {ftype}")
                elif use in FIT and ftype not in FIT[use]:
                    problems.append(f"{where}: {use} does not fit {ftype}")
                elif use not in FIT and use not in {"kql", "kql-range", "time"}:
                    problems.append(f"{where}: no type rule for {use}")
    return problems


def reference_problems(objects):
    problems = []
    ids = {(o["type"], o["id"]) for o in objects}
    for dashboard in by_type(objects, "dashboard").values():
        outer = {ref["name"]: ref for ref in dashboard["references"]}
        expected = set()
        for panel in panels(dashboard):
            index = panel["panelIndex"]
            attributes = panel["embeddableConfig"]["attributes"]
            inner = {ref["name"]: ref for ref in attributes["references"]}
            for layer in attributes["state"]["datasourceStates"]["formBased"]["layers"]:
                if f"indexpattern-datasource-layer-{layer}" not in inner:
                    problems.append(f"{panel['title']}: layer {layer} has no data view reference")
            for name, ref in inner.items():
                expected.add(f"{index}:{name}")
                if outer.get(f"{index}:{name}") != {**ref, "name": f"{index}:{name}"}:
                    problems.append(f"{panel['title']}: {name} is not on the dashboard")
        problems += [f"{dashboard['id']}: orphan reference {n}" for n in set(outer) - expected]
        for ref in dashboard["references"]:
            if ref["type"] == "index-pattern" and ref["id"] != DATA_VIEW_ID:
                problems.append(f"{dashboard['id']}: {ref['name']} points to {ref['id']}")
            if (ref["type"], ref["id"]) not in ids:
                problems.append(f"{dashboard['id']}: {ref['name']} points to a missing object")
    return problems


# --- the NDJSON is valid ----------------------------------------------------------------------


def test_every_line_is_one_saved_object():
    lines = NDJSON.read_text().split("\n")
    assert lines[-1] == "" and all(lines[:-1]), "one object a line, newline-terminated"
    for line in lines[:-1]:
        obj = json.loads(line)
        assert isinstance(obj, dict)
        assert {"id", "type", "attributes", "references"} <= set(obj), obj.get("id")
        assert isinstance(obj["attributes"], dict)
        for ref in obj["references"]:
            assert set(ref) == {"id", "type", "name"}, ref
    keys = [(o["type"], o["id"]) for o in saved_objects()]
    assert len(keys) == len(set(keys))


def test_embedded_json_attributes_parse():
    for obj in saved_objects():
        for path in EMBEDDED_JSON[obj["type"]]:
            text = dotted(obj["attributes"], path)
            assert isinstance(text, str), (obj["id"], path)
            json.loads(text)


def test_every_panel_is_a_by_value_lens_with_a_complete_state():
    for dashboard in by_type(saved_objects(), "dashboard").values():
        for panel in panels(dashboard):
            assert panel["type"] == "lens" and panel["version"]
            assert panel["gridData"]["i"] == panel["panelIndex"]
            attributes = panel["embeddableConfig"]["attributes"]
            assert attributes["type"] == "lens"
            assert attributes["visualizationType"] in {
                "lnsXY", "lnsMetric", "lnsDatatable", "lnsPie"}
            state = attributes["state"]
            layers = state["datasourceStates"]["formBased"]["layers"]
            assert layers, panel["title"]
            for layer in layers.values():
                assert layer["columnOrder"] == list(layer["columns"])
            visualization = state["visualization"]
            used = {visualization.get("layerId")} | {
                lay["layerId"] for lay in visualization.get("layers", [])}
            assert set(layers) <= used, panel["title"]


# --- fields and references ----------------------------------------------------------------------


def test_dashboards_use_only_mapped_fields_of_a_fitting_type():
    assert field_problems(saved_objects()) == []


def test_the_field_check_sees_every_place_a_field_hides():
    objects = saved_objects()
    assert len({name for obj in objects for tree in object_trees(obj)
                for name, _ in field_uses(tree)}) >= 10
    broken = copy.deepcopy(objects)
    dashboard = by_type(broken, "dashboard")["eventtrail-site-health"]
    items = panels(dashboard)
    layer = next(iter(items[2]["embeddableConfig"]["attributes"]["state"]["datasourceStates"]
                      ["formBased"]["layers"].values()))
    percentile = next(c for c in layer["columns"].values() if c["operationType"] == "percentile")
    percentile["sourceField"] = "user_agent.name"
    items[5]["embeddableConfig"]["attributes"]["state"]["query"]["query"] = "bot : true"
    dashboard["attributes"]["panelsJSON"] = json.dumps(items)
    dashboard["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"] = json.dumps(
        {"query": {"query": 'url.path >= "a" and "x:y" : 1', "language": "kuery"}})
    problems = field_problems(broken)
    assert "eventtrail-site-health: user_agent.name (percentile): percentile does not fit " \
        "keyword" in problems
    assert "eventtrail-site-health: bot (kql): not a mapped field" in problems
    assert "eventtrail-site-health: url.path (kql-range): a range on wildcard" in problems
    assert len(problems) == 3


def test_kql_fields():
    assert kql_fields('not eventtrail.bot : true and http.response.status_code >= 500') == [
        ("eventtrail.bot", ":"), ("http.response.status_code", ">=")]
    assert kql_fields('event.action : "user.login: x" or @timestamp<now') == [
        ("event.action", ":"), ("@timestamp", "<")]
    assert kql_fields("") == []


def test_every_reference_resolves_to_the_provisioned_data_view():
    objects = saved_objects()
    assert reference_problems(objects) == []
    assert {ref["id"] for d in by_type(objects, "dashboard").values()
            for ref in d["references"]} == {DATA_VIEW_ID}


def test_the_reference_check_catches_missing_and_foreign_references():
    broken = copy.deepcopy(saved_objects())
    dashboard = by_type(broken, "dashboard")["eventtrail-content"]
    dashboard["references"].pop()
    dashboard["references"][0]["id"] = "someone-elses-view"
    problems = reference_problems(broken)
    assert any("is not on the dashboard" in p for p in problems)
    assert any("points to someone-elses-view" in p for p in problems)
    assert any("points to a missing object" in p for p in problems)


def test_the_data_view_matches_the_event_stream_and_not_the_dead_letters():
    view = by_type(saved_objects(), "index-pattern")[DATA_VIEW_ID]
    title = view["attributes"]["title"]
    stream = DEFAULTS["DATA_STREAM"]
    type_, _dataset, namespace = stream.split("-", 2)
    assert fnmatch.fnmatchcase(stream, title)
    assert fnmatch.fnmatchcase(f"{type_}-{_dataset}-staging", title)
    assert not fnmatch.fnmatchcase(f"{type_}-{schema.DEADLETTER_DATASET}-{namespace}", title)
    assert view["attributes"]["timeFieldName"] == "@timestamp"


# --- dashboards and versions ---------------------------------------------------------------------


def test_the_four_dashboards_have_the_panels_the_issue_names():
    dashboards = by_type(saved_objects(), "dashboard")
    assert {i: {p["title"] for p in panels(d)} for i, d in dashboards.items()} == EXPECTED_PANELS
    for dashboard in dashboards.values():
        for panel in panels(dashboard):
            assert panel["embeddableConfig"]["attributes"]["title"] == panel["title"]


def test_panels_fit_the_grid_without_overlapping():
    for dashboard in by_type(saved_objects(), "dashboard").values():
        taken = set()
        for panel in panels(dashboard):
            g = panel["gridData"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 48, panel["title"]
            cells = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                     for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & taken, panel["title"]
            taken |= cells


def test_latency_is_labelled_in_nanoseconds():
    dashboard = by_type(saved_objects(), "dashboard")["eventtrail-site-health"]
    for panel in panels(dashboard):
        for layer in panel["embeddableConfig"]["attributes"]["state"]["datasourceStates"][
                "formBased"]["layers"].values():
            for column in layer["columns"].values():
                if column.get("sourceField") == "event.duration":
                    assert "(ns)" in column["label"]


def test_migration_versions_are_the_ones_kibana_ships():
    for obj in saved_objects():
        assert obj["coreMigrationVersion"] == CORE_MIGRATION_VERSION, obj["id"]
        assert obj["typeMigrationVersion"] == TYPE_MIGRATION_VERSION[obj["type"]], obj["id"]


# --- the committed file is the script's output --------------------------------------------------


def test_the_committed_ndjson_is_what_the_script_writes():
    assert load_builder().render() == NDJSON.read_text()


@pytest.mark.parametrize(("stream", "title"), [
    ("logs-eventtrail-default", "logs-eventtrail-*"),
    ("logs-community-prod", "logs-community-*"),
])
def test_the_script_derives_the_data_view_from_the_data_stream(stream, title):
    first = json.loads(load_builder().render(stream).splitlines()[0])
    assert first["id"] == DATA_VIEW_ID and first["attributes"]["title"] == title


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    builder = load_builder()
    target = tmp_path / "eventtrail.ndjson"
    assert builder.main(["--check", "-o", str(target)]) == 1
    assert builder.main(["-o", str(target)]) == 0
    assert builder.main(["--check", "-o", str(target)]) == 0
    target.write_text(target.read_text().replace("Top bots", "Top robots"))
    assert builder.main(["--check", "-o", str(target)]) == 1
    assert "stale" in capsys.readouterr().err


def test_the_script_refuses_a_field_outside_the_schema():
    builder = load_builder()
    bad = builder.Panel("Bad", "metric", (builder.unique("user.nickname", "Nicknames"),))
    dashboard = builder.Dashboard("x", "X", "", (bad,))
    with pytest.raises(KeyError, match="user.nickname"):
        builder.dashboard_object(dashboard)
