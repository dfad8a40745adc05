"""Check a Logstash pipeline against Logstash 9.5's bundled plugins and the event schema."""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .parser import (
    Array,
    Bareword,
    Compare,
    Condition,
    Config,
    ConfigError,
    Expression,
    FieldRef,
    Hash,
    In,
    Match,
    Not,
    Plugin,
    Regexp,
    String,
    Value,
    iter_conditions,
    iter_field_refs,
    iter_plugins,
    parse,
)
from .plugins import OptionSpec, PluginSpec, PluginTable, table

__all__ = ["PIPELINE_FIELDS", "Problem", "check_pipeline", "pipeline_files"]

# Fields a pipeline may name although the event schema does not list them. Logstash itself puts
# @version on every event; ECS-mode codecs and inputs add event.original, which a pipeline may
# remove. @timestamp, message and tags are schema fields, listed so the allowance holds for any
# field set. Everything under [@metadata] is allowed too: it never leaves Logstash.
PIPELINE_FIELDS = frozenset({"@timestamp", "@version", "message", "tags", "event.original"})

# Logstash's ${VAR} and ${VAR:default} substitution (SUBSTITUTION_PLACEHOLDER_REGEX).
_ENV = re.compile(r"\$\{[a-zA-Z_.][a-zA-Z0-9_.]*(?::[^}]*)?\}")
# sprintf references: %{[a][b]} or %{a}; %{+FORMAT} and %{{FORMAT}} format @timestamp instead.
_SPRINTF = re.compile(r"%\{(\{[^}]*\}|[^}]*)\}")
_BRACKETED = re.compile(r"(?:\[[^\[\]]+\])+")
_SEGMENT = re.compile(r"\[([^\[\]]+)\]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the pipeline. ``line`` is None for the pipeline as a whole."""

    file: str
    line: int | None
    message: str
    column: int | None = None
    level: str = "error"  # or "warning": Logstash would run, but the pipeline should change

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        prefix = "warning: " if self.level == "warning" else ""
        return f"{where}: {prefix}{self.message}"

    def sort_key(self) -> tuple[str, bool, int, int, str]:
        # Problems of the whole pipeline come after those with a place in a file.
        return self.file, self.line is None, self.line or 0, self.column or 0, self.message


def _field_path(text: str) -> tuple[str, ...]:
    """Logstash field reference syntax: [a][b], or a bare top-level name. ValueError if bad."""
    if not text:
        raise ValueError("an empty field name")
    if text.startswith("["):
        if not _BRACKETED.fullmatch(text):
            raise ValueError(f"`{text}` is not a valid field reference; write it as [a][b]")
        return tuple(_SEGMENT.findall(text))
    if "[" in text or "]" in text:
        raise ValueError(f"`{text}` is not a valid field reference; put every part in brackets, "
                         "as in [a][b]")
    return (text,)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.75)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _strings(value: Value) -> Iterator[String | Bareword]:
    """Every string-like value inside ``value``, hash keys included."""
    if isinstance(value, String | Bareword):
        yield value
    elif isinstance(value, Array):
        for item in value.items:
            yield from _strings(item)
    elif isinstance(value, Hash):
        for entry in value.entries:
            if isinstance(entry.key, String | Bareword):
                yield entry.key
            yield from _strings(entry.value)


class _Checker:
    def __init__(self, fields: Iterable[str], actions: Iterable[str], plugins: PluginTable) -> None:
        self.fields = frozenset(fields) | PIPELINE_FIELDS
        # A reference may name an object that holds schema fields, e.g. [user_agent][os].
        self.objects = frozenset(
            ".".join(name.split(".")[:i]) for name in self.fields
            for i in range(1, name.count(".") + 1))
        self.actions = frozenset(actions)
        self.plugins = plugins
        self.handled: set[str] = set()
        # Strings compared with [event][action], to catch names that are not event types.
        self.compared: list[tuple[str, String | Bareword]] = []
        self.problems: list[Problem] = []
        self.file = ""

    def add(self, node: object, message: str, level: str = "error") -> None:
        line = getattr(node, "line", None)
        column = getattr(node, "column", None)
        self.problems.append(Problem(self.file, line, message, column, level))

    # -- fields --

    def field(self, path: tuple[str, ...], node: object, shown: str, within: str = "") -> None:
        if path[0] == "@metadata":
            return
        quoted = [part for part in path if part != part.strip() or part.strip()[:1] in "\"'"]
        if quoted and isinstance(node, FieldRef):
            self.add(node, f"`{shown}` is a field reference to a field named {quoted[0]}, not a "
                           "list: Logstash reads a one-element list in a condition as a field "
                           "reference. Compare with `==`, or list two or more values")
            return
        dotted = next((part for part in path if "." in part), None)
        if dotted is not None:
            nested = "[" + "][".join(dotted.split(".")) + "]"
            self.add(node, f"`{shown}` names a field literally called \"{dotted}\": Logstash does "
                           f"not split field names on dots, so write {nested}")
            return
        name = ".".join(path)
        if name not in self.fields and name not in self.objects:
            close = difflib.get_close_matches(name, sorted(self.fields), n=1,
                                              cutoff=0.85)
            hint = ""
            if close:
                hint = close[0]
                if shown.startswith("["):
                    hint = "[" + "][".join(hint.split(".")) + "]"
                hint = f" (did you mean `{hint}`?)"
            where = f" in `{within}`" if within else ""
            self.add(node, f"field `{shown}`{where} is not in the event schema{hint}")

    def field_value(self, node: Value) -> None:
        """A string option whose value names a field."""
        if not isinstance(node, String | Bareword):
            return
        text = node.value
        if "%{" in text or _ENV.search(text):
            return  # decided per event or per environment; sprintf() checks what it can
        try:
            path = _field_path(text)
        except ValueError as exc:
            self.add(node, str(exc))
            return
        self.field(path, node, text)

    def sprintf(self, node: String | Bareword) -> None:
        for match in _SPRINTF.finditer(node.value):
            inner = match.group(1)
            if inner.startswith(("+", "{")) or _ENV.search(inner):
                continue
            try:
                path = _field_path(inner)
            except ValueError as exc:
                self.add(node, f"in {match.group()}: {exc}")
                continue
            self.field(path, node, inner, match.group())

    # -- plugins --

    def plugin(self, kind: str, plugin: Plugin) -> None:
        tbl = self.plugins
        if not tbl.is_bundled(kind, plugin.name):
            gem = tbl.unbundled_gem(kind, plugin.name)
            if gem:
                self.add(plugin, f"{kind} plugin `{plugin.name}` ({gem}) is not bundled with "
                                 f"Logstash {tbl.logstash}; the stock image cannot run it")
            else:
                self.add(plugin, f"unknown {kind} plugin `{plugin.name}`: Logstash {tbl.logstash} "
                                 f"bundles no {kind} plugin of that name"
                                 + _suggest(plugin.name, tbl.bundled(kind)))
            return
        spec = tbl.spec(kind, plugin.name)
        if spec is None:
            if not plugin.attributes:
                return  # nothing set, so nothing to verify
            self.add(plugin, f"{kind} plugin `{plugin.name}` is bundled with Logstash "
                             f"{tbl.logstash}, but eventtrail/logstash/plugins.json has no option "
                             "table for it, so its options cannot be checked; add one, with "
                             "sources")
            return
        first: dict[str, int] = {}
        for attribute in plugin.attributes:
            if attribute.name in first:
                self.add(attribute, f"option `{attribute.name}` is given twice (first at line "
                                    f"{first[attribute.name]}); Logstash merges the values",
                         "warning")
            first.setdefault(attribute.name, attribute.line)
            option = spec.options.get(attribute.name)
            if option is None:
                self.add(attribute, f"{spec.label} has no option `{attribute.name}`"
                                    + _suggest(attribute.name, spec.options))
                continue
            if option.obsolete:
                self.add(attribute, f"option `{attribute.name}` is obsolete in {spec.gem} "
                                    f"{spec.version}, which refuses to start: {option.obsolete}")
                continue
            if option.deprecated:
                self.add(attribute, f"option `{attribute.name}` of {spec.label} is deprecated: "
                                    f"{option.deprecated}", "warning")
            self.option(option, attribute.value)
        for option in spec.options.values():
            if option.required and option.name not in first and option.alias not in first:
                self.add(plugin, f"{spec.label} requires option `{option.name}`")
        if spec.writes:
            self.writes(spec, plugin)

    def option(self, option: OptionSpec, value: Value) -> None:
        role = option.field
        if role == "codec":
            self.codec(value)
        elif role == "codec_map" and isinstance(value, Hash):
            for entry in value.entries:
                self.codec(entry.value)
        elif role == "field":
            self.field_value(value)
        elif role == "fields":
            for item in value.items if isinstance(value, Array) else (value,):
                self.field_value(item)
        elif role in ("hash_keys", "hash_keys_values") and isinstance(value, Hash):
            for entry in value.entries:
                self.field_value(entry.key)
                if role == "hash_keys_values":
                    self.field_value(entry.value)
        elif role == "first_item" and isinstance(value, Array) and value.items:
            self.field_value(value.items[0])
        elif role == "gsub" and isinstance(value, Array):
            for item in value.items[::3]:
                self.field_value(item)
        if option.sprintf and role not in ("codec", "codec_map"):
            for node in _strings(value):
                self.sprintf(node)

    def codec(self, value: Value) -> None:
        if isinstance(value, Plugin):
            self.plugin("codec", value)
        elif isinstance(value, String | Bareword):
            if not _ENV.search(value.value):
                self.plugin("codec", Plugin(value.value, (), value.line, value.column))
        else:
            self.add(value, "a codec must be a codec name or a codec block such as json { }")

    def writes(self, spec: PluginSpec, plugin: Plugin) -> None:
        """Fields an input puts on every event by itself, which the schema must tolerate."""
        assert spec.writes is not None
        setting = plugin.get("ecs_compatibility")
        mode = self.plugins.ecs_default
        shown = f"{mode} (the default of pipeline.ecs_compatibility)"
        if isinstance(setting, String | Bareword):
            if _ENV.search(setting.value):
                return  # the mode is only known where the pipeline runs
            mode = "disabled" if setting.value == "disabled" else "v8"
            shown = setting.value
        rules = spec.writes["disabled" if mode == "disabled" else "v8"]
        written: list[tuple[str, str | None]] = [(field, None) for field in rules["always"]]
        for option, default in rules["targets"].items():
            given = plugin.get(option)
            target = given.value if isinstance(given, String | Bareword) else default
            written.append((target, None if isinstance(given, String | Bareword) else option))
        overwrites: list[str] = []
        extra: list[str] = []
        targets: list[str] = []
        for text, option in written:
            if "%{" in text or _ENV.search(text):
                continue
            try:
                path = _field_path(text)
            except ValueError:
                continue  # reported where the option is checked
            if path[0] == "@metadata":
                continue
            name = ".".join(path)
            if name in self.fields or name in self.objects:
                overwrites.append(text)
            elif option:
                targets.append(f"{text} (set {option} under [@metadata])")
            else:
                extra.append(text)
        what = f"{spec.label} with ecs_compatibility {shown}"
        if overwrites:
            self.add(plugin, f"{what} writes {', '.join(overwrites)} on every event, overwriting "
                             "the event's own values with the delivery's"
                             + ("; set ecs_compatibility => disabled" if mode != "disabled"
                                else ""))
        if extra or targets:
            fix = ("; set ecs_compatibility => disabled" if mode != "disabled" and extra else "")
            self.add(plugin, f"{what} adds fields that are not in the event schema: "
                             f"{', '.join(extra + targets)}{fix}")

    # -- conditions --

    def condition(self, condition: Condition) -> None:
        for ref in iter_field_refs(condition):
            self.field(ref.path, ref, ref.raw)
        self.collect_actions(condition, positive=True)

    def collect_actions(self, expression: Expression, positive: bool) -> None:
        if isinstance(expression, Condition):
            for operand in expression.operands:
                self.collect_actions(operand, positive)
        elif isinstance(expression, Not):
            self.collect_actions(expression.operand, not positive)
        elif not positive:
            return
        elif isinstance(expression, Compare) and expression.op == "==":
            for this, other in ((expression.left, expression.right),
                                (expression.right, expression.left)):
                if _is_action(this) and isinstance(other, String):
                    self.handled.add(other.value)
                    self.compared.append((self.file, other))
        elif (isinstance(expression, In) and not expression.negated
              and _is_action(expression.item) and isinstance(expression.collection, Array)):
            for item in expression.collection.items:
                if isinstance(item, String | Bareword):
                    self.handled.add(item.value)
                    self.compared.append((self.file, item))
        elif (isinstance(expression, Match) and expression.op == "=~"
              and _is_action(expression.subject)):
            pattern = expression.pattern
            try:
                # Logstash compiles these as Java regular expressions; Python's agree on the
                # subset event-type patterns use.
                text = pattern.pattern if isinstance(pattern, Regexp) else pattern.value
                regex = re.compile(text)
            except re.error as exc:
                self.add(pattern, f"cannot evaluate this pattern to see which event types it "
                                  f"handles: {exc}", "warning")
                return
            self.handled.update(action for action in self.actions if regex.search(action))

    def config(self, config: Config) -> None:
        for kind, plugin in iter_plugins(config):
            self.plugin(kind, plugin)
        for condition in iter_conditions(config):
            self.condition(condition)


def _is_action(node: object) -> bool:
    return isinstance(node, FieldRef) and node.path == ("event", "action")


def pipeline_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files Logstash reads for ``path.config``: the file, or a directory's files, sorted."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [path]


def check_pipeline(
    text_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    fields: Iterable[str],
    actions: Iterable[str],
    name: str = "<pipeline>",
    support_escapes: bool = False,
    plugins: PluginTable | None = None,
) -> list[Problem]:
    """Every problem found in a pipeline, sorted by file and line; empty when it is sound.

    ``text_or_paths`` is configuration text (a ``str``, reported as ``name``), a path (a
    ``pathlib.Path`` or other ``os.PathLike``: a file or a directory of pipeline files), or a list
    of paths. Logstash compiles each file separately and runs them as one pipeline, so each file
    must parse on its own while ``actions`` may be handled in any of them.
    ``fields`` are the dotted event-schema names (e.g. ``eventtrail.schema.BY_NAME``); ``actions``
    are the registered event types that some ``[event][action]`` condition must match.
    """
    checker = _Checker(fields, actions, plugins or table())
    sources: list[tuple[str, str | None]] = []
    if isinstance(text_or_paths, str):
        sources.append((name, text_or_paths))
    else:
        paths = ([text_or_paths] if isinstance(text_or_paths, os.PathLike)
                 else list(text_or_paths))
        for path in paths:
            for file in pipeline_files(path):
                try:
                    sources.append((str(file), file.read_text(encoding="utf-8")))
                except (OSError, UnicodeDecodeError) as exc:
                    checker.problems.append(Problem(str(file), None, f"cannot read: {exc}"))
                    sources.append((str(file), None))
        name = str(paths[0]) if len(paths) == 1 else name
    if not sources:
        checker.problems.append(Problem(name, None, "no pipeline files found"))
    complete = True
    for label, text in sources:
        checker.file = label
        if text is None:
            complete = False
            continue
        try:
            config = parse(text, source=label, support_escapes=support_escapes)
        except ConfigError as exc:
            checker.problems.append(Problem(label, exc.line, exc.message, exc.column))
            complete = False
            continue
        checker.config(config)
    # With a file unread or unparsed, which event types are handled is unknown; say nothing.
    if complete and sources and checker.actions:
        for action in sorted(checker.actions - checker.handled):
            checker.problems.append(Problem(
                name, None, f"event type `{action}` is not handled: no condition on "
                            f"[event][action] matches it (== \"{action}\", in [...] or =~ /.../)"))
        for label, node in checker.compared:
            if node.value not in checker.actions:
                checker.problems.append(Problem(
                    label, node.line, f"[event][action] is compared with `{node.value}`, which is "
                                     "not a registered event type"
                                     + _suggest(node.value, checker.actions),
                    node.column, "warning"))
    return sorted(checker.problems, key=Problem.sort_key)

