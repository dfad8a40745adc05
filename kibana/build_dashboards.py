"""Build kibana/dashboards/eventtrail.ndjson (a data view and four Lens dashboards) from specs."""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "kibana" / "dashboards" / "eventtrail.ndjson"

# Run as a plain script from a clone, the app is not installed: make `eventtrail` importable.
if str(ROOT / "app") not in sys.path:
    sys.path.insert(0, str(ROOT / "app"))
from eventtrail import schema  # noqa: E402
from eventtrail.conf import DEFAULTS  # noqa: E402

DATA_VIEW_ID = "eventtrail-events"

# The shapes and versions mirror Kibana's own sample data sets (elastic/kibana,
# src/platform/plugins/shared/home/server/services/sample_data/data_sets/*/saved_objects.ts):
# the index-pattern object carries 7.11.0 (its last migration), dashboards carry 8.7.0, and every
# object carries coreMigrationVersion 8.8.0. Kibana migrates older versions forward on import (the
# dashboard model versions after 8.7.0 only add mappings, see dashboard_saved_object.ts), whereas
# a version newer than the running Kibana is refused.
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {"index-pattern": "7.11.0", "dashboard": "8.7.0"}
PANEL_VERSION = "8.8.0"

# Ids of panels, layers and columns are UUIDs derived from names, so the output is stable.
ID_NAMESPACE = uuid.UUID("5b0f3c1e-7a52-4d1b-9a57-e7e4a1d0c0de")

GRID_COLUMNS = 48  # a Kibana dashboard is 48 grid units wide

# Event actions the dashboards count. They must stay the names of the app's registered event types.
ARTICLE_VIEW = "article.view"
# Reads: views that were served, as the analytics count them (a 404 or a 500 is not a read).
READS = (f'event.action : "{ARTICLE_VIEW}" and http.response.status_code >= 200 and '
         'http.response.status_code < 300')
ARTICLE_EDIT = "article.edit"
ARTICLE_STATE_CHANGE = "article.state_change"
USER_LOGIN = "user.login"
SCROLL = "browser.scroll"
VIDEO_ACTIONS = ("video.play", "video.progress", "video.ended")
USER_LOGIN_FAILED = "user.login_failed"

HUMANS_ONLY = "not eventtrail.bot : true"

# Lens data types for the Elasticsearch types of the schema.
LENS_DATA_TYPE = {
    "keyword": "string",
    "constant_keyword": "string",
    "long": "number",
    "float": "number",
    "ip": "ip",
    "boolean": "boolean",
    "date": "date",
}


# --- panel specs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One Lens column: a bucket (date_histogram, terms, filters) or a metric."""

    op: str
    label: str
    source: str | None = None  # the schema field it reads
    params: dict[str, Any] = field(default_factory=dict)
    time_shift: str | None = None

    @property
    def bucketed(self) -> bool:
        return self.op in {"date_histogram", "terms", "filters"}


def count(label: str) -> Column:
    return Column("count", label)


def unique(name: str, label: str, *, time_shift: str | None = None) -> Column:
    return Column("unique_count", label, name, time_shift=time_shift)


def percentile(name: str, pct: int, label: str) -> Column:
    return Column("percentile", label, name, {"percentile": pct})


def over_time(interval: str = "auto") -> Column:
    return Column("date_histogram", "@timestamp", "@timestamp", {"interval": interval})


def top(name: str, label: str, size: int = 10, *, other: bool = True) -> Column:
    return Column("terms", label, name, {"size": size, "otherBucket": other})


def split(label: str, *filters: tuple[str, str]) -> Column:
    """Buckets by KQL filters, each given as (label, query)."""
    return Column("filters", label, params={"filters": list(filters)})


XY_SERIES = {"bar_stacked", "bar_horizontal", "line", "area"}


@dataclass(frozen=True)
class Panel:
    """One by-value Lens panel.

    ``chart`` is an XY series type, "metric", "table" or "pie". ``x`` is the X axis of an XY chart,
    the rows of a table, or the slices of a pie; ``by`` breaks an XY chart down into series.
    """

    title: str
    chart: str
    metrics: tuple[Column, ...]
    x: Column | None = None
    by: Column | None = None
    query: str = ""
    description: str = ""
    width: int = 24
    height: int = 12
    time_range: tuple[str, str] | None = None  # a fixed window that ignores the time picker


@dataclass(frozen=True)
class Dashboard:
    id: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    query: str = ""


DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard(
        id="eventtrail-activity-overview",
        title="[Event Trail] Activity overview",
        description="What people do on the site. Bots are left out by the query; clear it to "
        "include them.",
        query=HUMANS_ONLY,
        panels=(
            Panel("Events", "metric", (count("Events"),), width=12, height=7),
            Panel("Active users", "metric", (unique("user.id", "Active users"),),
                  description="Distinct user.id in the selected time range.", width=12, height=7),
            Panel("Sessions", "metric", (unique("eventtrail.session.hash", "Sessions"),),
                  description="Distinct session hashes in the selected time range.",
                  width=12, height=7),
            Panel("Communities with activity", "metric",
                  (unique("eventtrail.community.slug", "Communities"),), width=12, height=7),
            Panel("Events over time by action", "bar_stacked", (count("Events"),),
                  x=over_time(), by=top("event.action", "Action", 10), width=48, height=14),
            Panel("Top communities", "bar_horizontal", (count("Events"),),
                  x=top("eventtrail.community.slug", "Community", 10, other=False),
                  description="Communities by number of events.", width=24, height=14),
            Panel("Active users over time", "line", (unique("user.id", "Active users"),),
                  x=over_time(), description="Distinct user.id per interval.",
                  width=24, height=14),
        ),
    ),
    Dashboard(
        id="eventtrail-content",
        title="[Event Trail] Content",
        description="Articles: what is read, what is trending, edits and state changes. Bots are "
        "left out by the query.",
        query=HUMANS_ONLY,
        panels=(
            Panel("Most viewed articles", "table",
                  (count("Views"), unique("user.id", "Distinct viewers")),
                  x=top("eventtrail.target.id", "Article id", 20, other=False),
                  query=READS,
                  description="Articles by views (served, 2xx) in the selected time range.",
                  height=16),
            Panel("Trending articles (views in the last 10 days)", "bar_horizontal",
                  (count("Views"),),
                  x=top("eventtrail.target.id", "Article id", 10, other=False),
                  query=READS, time_range=("now-10d", "now"),
                  description="Articles by views (served, 2xx) over the last 10 days, whatever "
                  "the time picker says.", height=16),
            Panel("Article edits over time", "bar_stacked", (count("Edits"),),
                  x=over_time(), query=f'event.action : "{ARTICLE_EDIT}"', height=14),
            Panel("Article state changes by new state", "bar_stacked", (count("State changes"),),
                  x=over_time(), by=top("eventtrail.target.state", "New state", 10),
                  query=f'event.action : "{ARTICLE_STATE_CHANGE}"',
                  description="State transitions, broken down by the state the article moved "
                  "to (eventtrail.target.state).", height=14),
            Panel("Reading depth", "bar_horizontal", (count("Scroll events"),),
                  x=top("eventtrail.browser.scroll_depth", "Depth reached (%)", 4, other=False),
                  query=f'event.action : "{SCROLL}"',
                  description="browser.scroll events by the depth they reached (25, 50, 75, "
                  "100 %), each reported once per page view. Per-article shares are on the "
                  "app's community analytics page.", height=14),
            Panel("Video completion", "bar_horizontal", (count("Events"),),
                  x=top("event.action", "Video event", 5, other=False),
                  query="event.action : (" + " or ".join(f'"{a}"' for a in VIDEO_ACTIONS) + ")",
                  description="Plays, quartiles reached (all four together) and ends: ended / "
                  "play is the completion rate. Per-video figures are on the app's analytics pages.",
                  height=14),
        ),
    ),
    Dashboard(
        id="eventtrail-users",
        title="[Event Trail] Users",
        description="Sign-ins, failed sign-ins and how many users come back. Bots are included: "
        "failed logins from crawlers matter here.",
        panels=(
            Panel("Logins", "metric", (count("Logins"),),
                  query=f'event.action : "{USER_LOGIN}"', width=12, height=7),
            Panel("Failed logins", "metric", (count("Failed logins"),),
                  query=f'event.action : "{USER_LOGIN_FAILED}"', width=12, height=7),
            Panel("Users who logged in", "metric", (unique("user.id", "Users"),),
                  query=f'event.action : "{USER_LOGIN}"', width=24, height=7),
            Panel("Logins over time", "bar_stacked", (count("Logins"),),
                  x=over_time(), query=f'event.action : "{USER_LOGIN}"', height=14),
            Panel("Failed logins over time", "bar_stacked", (count("Failed logins"),),
                  x=over_time(), query=f'event.action : "{USER_LOGIN_FAILED}"', height=14),
            Panel("Active users vs. one week earlier (proxy for new vs returning)", "line",
                  (unique("user.id", "Active users"),
                   unique("user.id", "Active users one week earlier", time_shift="1w")),
                  x=over_time("1d"),
                  description="Distinct user.id per day, beside the same count shifted back one "
                  "week. Lens cannot tell a user's first visit from a return visit (the events "
                  "carry no first-seen date), so this is a proxy: a gap above last week's line "
                  "suggests newcomers, it does not count them.", height=14),
            Panel("Failed logins by client IP", "table", (count("Failed logins"),),
                  x=top("source.ip", "Client IP", 20, other=False),
                  query=f'event.action : "{USER_LOGIN_FAILED}"', height=14),
        ),
    ),
    Dashboard(
        id="eventtrail-site-health",
        title="[Event Trail] Site health",
        description="Status codes, server time, user agents and bots. Bots are included here.",
        panels=(
            Panel("Responses by status class", "bar_stacked", (count("Responses"),),
                  x=over_time(),
                  by=split("Status class",
                           ("2xx and 3xx", "http.response.status_code < 400"),
                           ("4xx", "http.response.status_code >= 400 and "
                                   "http.response.status_code < 500"),
                           ("5xx", "http.response.status_code >= 500")),
                  height=14),
            Panel("Top status codes", "table", (count("Responses"),),
                  x=top("http.response.status_code", "Status code", 20, other=False),
                  height=14),
            Panel("Server time percentiles (event.duration, nanoseconds)", "line",
                  (percentile("event.duration", 50, "p50 server time (ns)"),
                   percentile("event.duration", 95, "p95 server time (ns)"),
                   percentile("event.duration", 99, "p99 server time (ns)")),
                  x=over_time(),
                  description="event.duration is the time the server took, in nanoseconds "
                  "(1 ms = 1,000,000 ns).", width=48, height=14),
            Panel("User agents", "pie", (count("Events"),),
                  x=top("user_agent.name", "User agent", 10), height=14),
            Panel("Bots vs humans", "bar_stacked", (count("Events"),),
                  x=over_time(),
                  by=split("Client", ("Bots", "eventtrail.bot : true"), ("Humans", HUMANS_ONLY)),
                  description="Bots are flagged by the pipeline (eventtrail.bot, also tagged "
                  "bot), never dropped.", height=14),
            Panel("Top bots", "table", (count("Events"), unique("source.ip", "Client IPs")),
                  x=top("user_agent.name", "Bot", 20, other=False),
                  query="eventtrail.bot : true", height=14),
        ),
    ),
)


# --- rendering ---------------------------------------------------------------------------------


def _id(*parts: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(parts)))


def _kql(query: str) -> dict[str, str]:
    return {"query": query, "language": "kuery"}


def _lens_column(col: Column, order_by: str) -> dict[str, Any]:
    out: dict[str, Any] = {"label": col.label, "customLabel": True}
    if col.op == "count":
        out.update(dataType="number", operationType="count", isBucketed=False, scale="ratio",
                   sourceField="___records___", params={"emptyAsNull": True})
    elif col.op == "unique_count":
        out.update(dataType="number", operationType="unique_count", isBucketed=False,
                   scale="ratio", sourceField=col.source, params={"emptyAsNull": True})
    elif col.op == "percentile":
        out.update(dataType="number", operationType="percentile", isBucketed=False, scale="ratio",
                   sourceField=col.source, params={"percentile": col.params["percentile"]})
    elif col.op == "date_histogram":
        out.update(dataType="date", operationType="date_histogram", isBucketed=True,
                   scale="interval", sourceField=col.source,
                   params={"interval": col.params["interval"], "includeEmptyRows": True,
                           "dropPartials": False})
        del out["customLabel"]
    elif col.op == "terms":
        assert col.source is not None
        out.update(dataType=LENS_DATA_TYPE[schema.get(col.source).type], operationType="terms",
                   scale="ordinal", sourceField=col.source, isBucketed=True,
                   params={"size": col.params["size"],
                           "orderBy": {"type": "column", "columnId": order_by},
                           "orderDirection": "desc", "otherBucket": col.params["otherBucket"],
                           "missingBucket": False, "parentFormat": {"id": "terms"}})
    elif col.op == "filters":
        out.update(dataType="string", operationType="filters", scale="ordinal", isBucketed=True,
                   params={"filters": [{"input": _kql(q), "label": label}
                                       for label, q in col.params["filters"]]})
    else:
        raise ValueError(f"unknown Lens operation {col.op!r}")
    if col.time_shift:
        out["timeShift"] = col.time_shift
    if col.source is not None:
        schema.get(col.source)  # an unknown field fails the build here, not in Kibana
    return out


def _visualization(panel: Panel, layer: str, ids: dict[str, str]) -> tuple[str, dict[str, Any]]:
    metrics = [ids[f"metric{i}"] for i in range(len(panel.metrics))]
    if panel.chart == "metric":
        return "lnsMetric", {"layerId": layer, "layerType": "data", "metricAccessor": metrics[0]}
    if panel.chart == "table":
        rows = [ids[k] for k in ("by", "x") if k in ids]
        return "lnsDatatable", {
            "layerId": layer,
            "layerType": "data",
            "columns": [{"columnId": c, "isTransposed": False} for c in rows + metrics],
            "sorting": {"columnId": metrics[0], "direction": "desc"},
            "rowHeight": "single",
            "rowHeightLines": 1,
        }
    if panel.chart == "pie":
        return "lnsPie", {
            "shape": "pie",
            "layers": [{
                "layerId": layer,
                "layerType": "data",
                "primaryGroups": [ids["x"]],
                "metrics": metrics,
                "numberDisplay": "percent",
                "categoryDisplay": "default",
                "legendDisplay": "default",
                "nestedLegend": False,
                "legendSize": "auto",
            }],
        }
    if panel.chart in XY_SERIES:
        layer_state: dict[str, Any] = {
            "layerId": layer,
            "layerType": "data",
            "seriesType": panel.chart,
            "xAccessor": ids["x"],
            "accessors": metrics,
            "position": "top",
            "showGridlines": False,
        }
        if "by" in ids:
            layer_state["splitAccessor"] = ids["by"]
        visible = {"x": True, "yLeft": True, "yRight": True}
        return "lnsXY", {
            "legend": {"isVisible": True, "position": "right", "legendSize": "auto"},
            "valueLabels": "hide",
            "fittingFunction": "None",
            "axisTitlesVisibilitySettings": {"x": False, "yLeft": True, "yRight": True},
            "tickLabelsVisibilitySettings": visible,
            "gridlinesVisibilitySettings": visible,
            "preferredSeriesType": panel.chart,
            "layers": [layer_state],
        }
    raise ValueError(f"{panel.title}: unknown chart {panel.chart!r}")


def _check_shape(panel: Panel) -> None:
    if panel.chart == "metric" and (panel.x or panel.by or len(panel.metrics) != 1):
        raise ValueError(f"{panel.title}: a metric panel has exactly one metric and no buckets")
    if panel.chart == "pie" and (panel.by or len(panel.metrics) != 1):
        raise ValueError(f"{panel.title}: a pie panel has one metric, sliced by x")
    if panel.chart in XY_SERIES | {"pie", "table"} and panel.x is None:
        raise ValueError(f"{panel.title}: a {panel.chart} panel needs x")
    if any(c.bucketed for c in panel.metrics):
        raise ValueError(f"{panel.title}: metrics must not be buckets")


def lens_attributes(dashboard: Dashboard, panel: Panel) -> dict[str, Any]:
    """The by-value Lens attributes of one panel, as the sample data stores them."""
    _check_shape(panel)
    key = (dashboard.id, panel.title)
    layer = _id(*key, "layer")
    ids: dict[str, str] = {}
    columns: dict[str, Any] = {}
    # Breakdown first, then X: Lens nests aggregations in column order, so the top terms are
    # picked over the whole range rather than per interval.
    roles = [("by", panel.by), ("x", panel.x)]
    roles += [(f"metric{i}", m) for i, m in enumerate(panel.metrics)]
    for role, col in roles:
        if col is not None:
            ids[role] = _id(*key, role)
    for role, col in roles:
        if col is not None:
            columns[ids[role]] = _lens_column(col, ids["metric0"])
    visualization_type, visualization = _visualization(panel, layer, ids)
    return {
        "title": panel.title,
        "description": panel.description,
        "visualizationType": visualization_type,
        "type": "lens",
        "references": [
            {"type": "index-pattern", "id": DATA_VIEW_ID,
             "name": "indexpattern-datasource-current-indexpattern"},
            {"type": "index-pattern", "id": DATA_VIEW_ID,
             "name": f"indexpattern-datasource-layer-{layer}"},
        ],
        "state": {
            "visualization": visualization,
            "query": _kql(panel.query),
            "filters": [],
            "datasourceStates": {
                "formBased": {
                    "layers": {
                        layer: {
                            "columns": columns,
                            "columnOrder": list(columns),
                            "incompleteColumns": {},
                        }
                    }
                }
            },
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }


def _layout(panels: tuple[Panel, ...]) -> Iterator[tuple[Panel, dict[str, int]]]:
    """Place panels left to right in rows of 48 units, in the order they are declared."""
    x = y = row_height = 0
    for panel in panels:
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        yield panel, {"x": x, "y": y, "w": panel.width, "h": panel.height}
        x += panel.width
        row_height = max(row_height, panel.height)


def dashboard_object(dashboard: Dashboard) -> dict[str, Any]:
    panels_json: list[dict[str, Any]] = []
    references: list[dict[str, str]] = []
    for panel, grid in _layout(dashboard.panels):
        index = _id(dashboard.id, panel.title, "panel")
        attributes = lens_attributes(dashboard, panel)
        config: dict[str, Any] = {"attributes": attributes, "hidePanelTitles": False,
                                  "enhancements": {}}
        if panel.description:
            config["description"] = panel.description
        if panel.time_range:
            config["timeRange"] = {"from": panel.time_range[0], "to": panel.time_range[1]}
        panels_json.append({
            "version": PANEL_VERSION,
            "type": "lens",
            "gridData": {**grid, "i": index},
            "panelIndex": index,
            "embeddableConfig": config,
            "title": panel.title,
        })
        # The dashboard carries each panel's references too, prefixed with the panel index.
        references += [{**ref, "name": f"{index}:{ref['name']}"}
                       for ref in attributes["references"]]
    return {
        "id": dashboard.id,
        "type": "dashboard",
        "managed": False,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION["dashboard"],
        "attributes": {
            "title": dashboard.title,
            "description": dashboard.description,
            "panelsJSON": _dumps(panels_json),
            "optionsJSON": _dumps({"useMargins": True, "syncColors": False, "syncCursor": True,
                                   "syncTooltips": False, "hidePanelTitles": False}),
            "timeRestore": True,
            "timeFrom": "now-7d",
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 60000},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": _dumps({"query": _kql(dashboard.query), "filter": []}),
            },
            "version": 1,
        },
        "references": references,
    }


def data_view_title(data_stream: str) -> str:
    """``logs-eventtrail-default`` -> ``logs-eventtrail-*``: every namespace, no dead letters."""
    type_, dataset, _namespace = data_stream.split("-", 2)
    return f"{type_}-{dataset}-*"


def data_view_object(data_stream: str) -> dict[str, Any]:
    return {
        "id": DATA_VIEW_ID,
        "type": "index-pattern",
        "managed": False,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION["index-pattern"],
        "attributes": {
            "title": data_view_title(data_stream),
            "name": "Event Trail events",
            "timeFieldName": "@timestamp",
            "fieldAttrs": "{}",
            "fieldFormatMap": "{}",
            "fields": "[]",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "typeMeta": "{}",
        },
        "references": [],
    }


def saved_objects(data_stream: str) -> list[dict[str, Any]]:
    """The data view first, so an import resolves every dashboard's references."""
    return [data_view_object(data_stream)] + [dashboard_object(d) for d in DASHBOARDS]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def render(data_stream: str | None = None) -> str:
    stream = data_stream or DEFAULTS["DATA_STREAM"]
    return "".join(_dumps(obj) + "\n" for obj in saved_objects(stream))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-stream", help=f"default: {DEFAULTS['DATA_STREAM']}")
    parser.add_argument("--output", "-o", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the output file differs from what would be written")
    args = parser.parse_args(argv)
    text = render(args.data_stream)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} ({text.count(chr(10))} saved objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
