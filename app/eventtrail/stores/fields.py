"""The one registry of API fields: filtering, sorting, selection, grouping, schema and errors."""

from __future__ import annotations

from dataclasses import dataclass

from eventtrail import schema
from eventtrail.models import COLUMNS

EQUALITY = frozenset({"exact", "in", "not", "exists"})
RANGE = frozenset({"gt", "gte", "lt", "lte"})
LOOKUPS = ("exact", "in", "not", "exists", "gt", "gte", "lt", "lte")

# The schema's ES types folded into the few kinds the API knows how to parse and compare.
_KINDS = {
    "keyword": "keyword",
    "wildcard": "keyword",
    "constant_keyword": "keyword",
    "long": "integer",
    "float": "number",
    "date": "date",
    "boolean": "boolean",
    "ip": "ip",
}
# Fields that ``q`` searches: case-insensitive substring or prefix, the same on both stores.
TEXT_FIELDS = (
    "event.action",
    "user.name",
    "url.path",
    "user_agent.original",
    "eventtrail.search.query",
    "eventtrail.community.slug",
)


@dataclass(frozen=True)
class ApiField:
    """One field of the API and where each store keeps it."""

    name: str  # the schema's dotted name, as the API spells it
    kind: str  # keyword, integer, number, date, boolean, ip; "" when only selectable
    description: str
    es: str  # field name in the Elasticsearch mapping
    column: str | None  # indexed column of the database store, if any
    json_path: tuple[str, ...]  # path inside ``document`` when there is no column
    lookups: frozenset[str]
    sortable: bool
    groupable: bool
    selectable: bool = True

    @property
    def filterable(self) -> bool:
        return bool(self.lookups)


def _api_field(spec: schema.Field) -> ApiField:
    kind = "" if spec.array else _KINDS.get(spec.type, "")
    column = COLUMNS.get(spec.name)
    lookups: frozenset[str] = frozenset()
    if kind:
        lookups = EQUALITY | RANGE if kind in {"integer", "number", "date"} else EQUALITY
    # Sorting and grouping need an indexed column, so both stores can do them at any depth.
    indexed = column is not None and kind in {"keyword", "integer", "date", "boolean", "ip"}
    return ApiField(
        name=spec.name,
        kind=kind,
        description=spec.description,
        es=spec.name,
        column=column,
        json_path=spec.path,
        lookups=lookups,
        sortable=indexed and spec.name != "source.ip",
        groupable=indexed
        and kind in {"keyword", "integer", "boolean"}
        and spec.name not in {"event.id", "event.duration"},
    )


FIELDS: dict[str, ApiField] = {spec.name: _api_field(spec) for spec in schema.FIELDS}
TIMESTAMP = "@timestamp"
TIEBREAKER = "event.id"
USER_ID = "user.id"
COMMUNITY = "eventtrail.community.slug"
BOT = "eventtrail.bot"
DURATION = "event.duration"


def filterable() -> list[ApiField]:
    return [f for f in FIELDS.values() if f.filterable]


def sortable() -> list[str]:
    return [f.name for f in FIELDS.values() if f.sortable]


def groupable() -> list[str]:
    return [f.name for f in FIELDS.values() if f.groupable]
