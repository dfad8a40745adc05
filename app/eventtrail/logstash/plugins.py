"""The table of Logstash 9.5's bundled plugins and their options, read from plugins.json."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["KINDS", "OptionSpec", "PluginSpec", "PluginTable", "table"]

KINDS = ("input", "filter", "output", "codec")

# How an option's value names event fields, so the checker can find them:
#   field            the value is one field reference
#   fields           a field reference or a list of them
#   hash_keys        the keys of a hash are field references
#   hash_keys_values keys and values of a hash are field references
#   first_item       the first item of a list is a field reference (date's match)
#   gsub             every third item of a list, from the first, is a field reference
#   codec            the value is a codec (a name or a codec block)
#   codec_map        the values of a hash are codec names (http's additional_codecs)
FIELD_ROLES = frozenset(
    {"field", "fields", "hash_keys", "hash_keys_values", "first_item", "gsub", "codec",
     "codec_map"})


@dataclass(frozen=True)
class OptionSpec:
    name: str
    required: bool = False
    deprecated: str | None = None
    obsolete: str | None = None
    field: str | None = None  # one of FIELD_ROLES
    sprintf: bool = True  # whether %{...} in the value is event-field interpolation
    alias: str | None = None  # a deprecated option that can stand in for a required one
    added: str | None = None  # plugin version that added it, when newer than the docs read


@dataclass(frozen=True)
class PluginSpec:
    kind: str
    name: str
    gem: str
    version: str
    options: Mapping[str, OptionSpec]  # the plugin's own options plus the common ones
    sources: Mapping[str, Any]
    writes: Mapping[str, Any] | None = None  # fields the plugin adds by itself, per ECS mode

    @property
    def label(self) -> str:
        return f"{self.kind} plugin `{self.name}` ({self.gem} {self.version})"


def _option(name: str, data: Mapping[str, Any]) -> OptionSpec:
    unknown = set(data) - {"required", "deprecated", "obsolete", "field", "sprintf", "alias",
                           "added"}
    if unknown:
        raise ValueError(f"plugins.json: option {name} has unknown keys {sorted(unknown)}")
    if data.get("field") is not None and data["field"] not in FIELD_ROLES:
        raise ValueError(f"plugins.json: option {name} has unknown field role {data['field']}")
    return OptionSpec(name=name, **data)


class PluginTable:
    """Answers: is this plugin bundled, and what options does its bundled version accept."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.logstash = str(data["logstash"])
        self.sources: Mapping[str, str] = data["sources"]
        self.ecs_default = str(data["ecs_compatibility_default"]["value"])
        self._aliases: Mapping[str, Mapping[str, str]] = {
            kind: names for kind, names in data["aliases"].items() if kind in KINDS}
        self._bundled = {kind: frozenset(data["bundled"][kind]) for kind in KINDS}
        self._not_bundled: Mapping[str, Mapping[str, str]] = data["not_bundled"]
        common = data["common_options"]
        shared = {name: _option(name, spec) for name, spec in common["any"]["options"].items()}
        self._specs: dict[tuple[str, str], PluginSpec] = {}
        for kind, plugins in data["plugins"].items():
            base = dict(shared)
            base.update(
                {name: _option(name, spec) for name, spec in common[kind]["options"].items()})
            for name, plugin in plugins.items():
                options = dict(base)
                options.update({opt: _option(opt, spec) for opt, spec in plugin["options"].items()})
                sources = {key: value for key, value in plugin.items()
                           if key not in ("gem", "version", "options", "writes")}
                self._specs[(kind, name)] = PluginSpec(
                    kind=kind, name=name, gem=plugin["gem"], version=plugin["version"]["value"],
                    options=options, sources=sources, writes=plugin.get("writes"))

    def resolve(self, kind: str, name: str) -> str:
        """The real plugin name behind an alias such as input `elastic_agent`."""
        return self._aliases.get(kind, {}).get(name, name)

    def is_bundled(self, kind: str, name: str) -> bool:
        return self.resolve(kind, name) in self._bundled.get(kind, frozenset())

    def bundled(self, kind: str) -> frozenset[str]:
        return self._bundled.get(kind, frozenset())

    def unbundled_gem(self, kind: str, name: str) -> str | None:
        """The gem of a known plugin that Logstash 9.5 does not bundle, else None."""
        return self._not_bundled.get(kind, {}).get(name)

    def spec(self, kind: str, name: str) -> PluginSpec | None:
        """The option table of a bundled plugin, or None when the project has none for it."""
        return self._specs.get((kind, self.resolve(kind, name)))

    def specs(self) -> list[PluginSpec]:
        return list(self._specs.values())


@cache
def table() -> PluginTable:
    """The table shipped with the package (plugins.json next to this module)."""
    data = resources.files("eventtrail.logstash").joinpath("plugins.json")
    text = data.read_text(encoding="utf-8")
    return PluginTable(json.loads(text))
