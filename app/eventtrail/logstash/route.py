"""Route one event through a pipeline's conditions: the branches it takes, the filters it reaches
(named, not run) and the stream it ends in.

Conditions are evaluated as Logstash 9.5's Java execution evaluates them
(``org.logstash.config.ir.compiler.EventCondition``), on the event as the input's codec and
``org.logstash.Event`` make it. Only ``mutate`` is simulated (its tags, fields and conversions
decide later branches); every other filter is reported, with the field it reads when that field
has a type the filter cannot take (see ``FILTER_INPUTS``), never run.

Where Ruby and Java semantics differ from what a reader may expect:
- regexes are Ruby's: ``^`` and ``$`` match at every line end, so anchor with ``\\A`` and ``\\z``;
  ``=~`` is false, and ``!~`` true, for anything that is not a string;
- a field is truthy unless it is missing, null, ``false``, ``""`` or the string ``"false"``:
  ``0``, ``[]`` and ``{}`` are truthy;
- ``in`` on a string field is a substring test; ``==`` is type-strict (``5`` is not ``"5"``).
"""
from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventtrail import schema

from . import gate
from .parser import (
    Array,
    Bareword,
    Branch,
    Compare,
    Condition,
    Config,
    Expression,
    FieldRef,
    Hash,
    In,
    Match,
    MethodCall,
    Not,
    Number,
    Plugin,
    Regexp,
    Statement,
    String,
    Value,
)

__all__ = ["FILTER_INPUTS", "Route", "decode", "explain", "render", "route", "ruby_regex"]

_ENV = re.compile(r"\$\{([a-zA-Z_.][a-zA-Z0-9_.]*)(?::([^}]*))?\}")
_SPRINTF = re.compile(r"%\{([^{}+][^}]*)\}")


class LogstashRaises(Exception):
    """What Logstash itself would raise here: outside a plugin's rescue, it stops the pipeline."""


@dataclass
class Route:
    """Where one event went. ``hazards`` lists every place Logstash would raise."""

    event: dict[str, Any]
    steps: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    hazards: list[str] = field(default_factory=list)
    # The events a filter made of this one (the batch splitter), each routed on from there;
    # this one is then cancelled.
    spawned: list[Route] = field(default_factory=list)

    @property
    def tags(self) -> list[str]:
        tags = self.event.get("tags")
        return [tags] if isinstance(tags, str) else list(tags or [])

    @property
    def stream(self) -> str | None:
        """The data stream of the last output reached, when it names one."""
        for output in reversed(self.outputs):
            if " -> " in output:
                return output.split(" -> ", 1)[1]
        return None

    def __str__(self) -> str:
        lines = [*self.steps]
        if self.spawned:
            lines.append(f"split into {len(self.spawned)} events; this one is cancelled")
            return "\n".join(lines)
        lines.append("tags: " + (", ".join(self.tags) or "(none)"))
        lines.append("ends in: " + (self.stream or ", ".join(self.outputs) or "no output"))
        lines.extend(f"HAZARD: {h}" for h in self.hazards)
        return "\n".join(lines)


# --- the event as Logstash holds it ------------------------------------------------------------


class _Null:
    """A field that is there and null. Logstash holds it as Ruby nil, which is not a missing
    field: ``in ["x", ""]`` matches it (its text is ""), and writing a child under it raises."""

    def __repr__(self) -> str:
        return "null"


NULL = _Null()


def _get(event: Any, path: tuple[str, ...]) -> Any:
    """``Accessors.get``: None when the field or a parent is missing or a parent is not a map or
    a list; ``NULL`` when the field itself is there and null."""
    target = event
    for key in path:
        if isinstance(target, dict):
            target = NULL if key in target and target[key] is None else target.get(key)
        elif isinstance(target, list):
            try:
                index = int(key)
            except ValueError:
                return None
            if not -len(target) <= index < len(target):
                return None
            target = NULL if target[index] is None else target[index]
        else:
            return None
    return target


def _set(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """``Accessors.set``: missing parents are created; a parent that is a scalar raises."""
    target: Any = event
    for key in path[:-1]:
        child = _get(target, (key,))
        if child is None:
            child = {}
            _set_child(target, key, child)
        elif child is NULL:
            raise LogstashRaises(f"InvalidFieldSetException: cannot set under [{key}], a null")
        target = child
    _set_child(target, path[-1], value)


def _set_child(target: Any, key: str, value: Any) -> None:
    if isinstance(target, dict):
        target[key] = value
    elif isinstance(target, list):
        try:
            index = int(key)
        except ValueError:
            return
        while len(target) < index:
            target.append(None)
        if index < len(target):
            target[index] = value
        else:
            target.append(value)
    else:
        raise LogstashRaises(f"InvalidFieldSetException: cannot set [{key}] on {_java_str(target)!r}")


def _remove(event: dict[str, Any], path: tuple[str, ...]) -> None:
    parent = _get(event, path[:-1]) if len(path) > 1 else event
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
    elif isinstance(parent, list):
        with contextlib.suppress(ValueError, IndexError):
            del parent[int(path[-1])]


def _java_str(value: Any) -> str:
    """``Object.toString()`` of the value as Logstash holds it."""
    if value is None:
        return "null"
    if value is NULL:
        return ""  # RubyNil's toString
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).replace("e+", "E").replace("e-", "E-").replace("inf", "Infinity")
    if isinstance(value, list):
        return "[" + ", ".join(_java_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_str(v)}" for k, v in value.items()) + "}"
    return str(value)


def _truthy(value: Any) -> bool:
    """``EventCondition.valueIsTruthy``."""
    if value is None:
        return False
    text = _java_str(value)
    return text != "" and text != "false"


def _same(a: Any, b: Any) -> bool:
    """Java/Ruby ``equals``: equal values of the same kind (an integer is not a float)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return False


_RUBY_ESCAPES = [(r"\z", r"\Z"), (r"\h", "[0-9a-fA-F]"), (r"\H", "[^0-9a-fA-F]")]


def ruby_regex(pattern: str) -> re.Pattern[str]:
    """A Ruby (Onigmo) regex as a Python one, for the constructs pipelines use: ``^``/``$`` at
    line ends, ``\\A``, ``\\z``, ``\\Z``, ``\\h``, ``(?i)``, ``(?m)`` (Ruby's dot-all)."""
    out, i = [], 0
    while i < len(pattern):
        two = pattern[i:i + 2]
        if two == r"\Z":
            out.append(r"(?=\n?\Z)")
        elif two in dict(_RUBY_ESCAPES):
            out.append(dict(_RUBY_ESCAPES)[two])
        elif two.startswith("\\"):
            out.append(two)
        elif pattern.startswith("(?m", i):
            out.append("(?s")
            i += 3
            continue
        else:
            out.append(pattern[i])
            i += 1
            continue
        i += 2
    return re.compile("".join(out), re.MULTILINE)


# --- conditions ------------------------------------------------------------------------------------


class _Evaluator:
    def __init__(self, event: dict[str, Any], hazards: list[str]) -> None:
        self.event = event
        self.hazards = hazards

    def value(self, node: Any) -> Any:
        if isinstance(node, FieldRef):
            return _get(self.event, node.path)
        if isinstance(node, String | Number | Bareword):
            return node.value
        if isinstance(node, Array):
            return [self.value(item) for item in node.items]
        raise LogstashRaises(f"line {node.line}: {type(node).__name__} cannot be a value")

    def condition(self, node: Expression) -> bool:
        if isinstance(node, Condition):
            return self._joined(node)
        if isinstance(node, Not):
            return not self.condition(node.operand)
        if isinstance(node, FieldRef):
            return _truthy(_get(self.event, node.path))
        if isinstance(node, String | Number):
            return _truthy(node.value)
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, In):
            found = self._in(node)
            return not found if node.negated else found
        if isinstance(node, Match):
            matched = self._match(node)
            return matched if node.op == "=~" else not matched
        if isinstance(node, MethodCall):
            raise LogstashRaises(f"line {node.line}: Logstash has no method calls in conditions")
        raise LogstashRaises(f"line {node.line}: {type(node).__name__} is not a condition")

    def _joined(self, node: Condition) -> bool:
        """Logstash joins operands with a shunting yard in which ``and`` binds tighter than
        ``or``; ``xor`` and ``nand`` have no precedence and may only stand alone."""
        precedence = {"and": 2, "or": 1}
        out: list[Any] = []
        operators: list[str] = []
        for i, operand in enumerate(node.operands):
            if i:
                operator = node.operators[i - 1]
                if operators:
                    if operators[-1] not in precedence or operator not in precedence:
                        raise LogstashRaises(f"line {node.line}: Logstash cannot mix "
                                             f"`{operators[-1]}` and `{operator}`")
                    if precedence[operators[-1]] > precedence[operator]:
                        out.append(operators.pop())
                operators.append(operator)
            out.append(operand)
        out.extend(reversed(operators))
        stack: list[Callable[[], bool]] = []
        for item in out:
            if isinstance(item, str):
                right, left = stack.pop(), stack.pop()
                stack.append(_combine(item, left, right))
            else:
                stack.append(functools.partial(self.condition, item))
        (result,) = stack
        return result()

    def _compare(self, node: Compare) -> bool:
        left, right = self.value(node.left), self.value(node.right)
        if node.op in ("==", "!="):
            equal = _same(left, right)
            return equal if node.op == "==" else not equal
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
        if not numbers and not (isinstance(left, str) and isinstance(right, str)):
            self.hazards.append(f"line {node.line}: `{node.op}` between {_kind(left)} and "
                                f"{_kind(right)}: Logstash raises and stops the pipeline")
            return False
        return bool({"<": left < right, ">": left > right, "<=": left <= right,
                     ">=": left >= right}[node.op])

    def _in(self, node: In) -> bool:
        item, collection = node.item, node.collection
        found = self.value(item)
        if isinstance(item, FieldRef) and isinstance(collection, String | Number):
            return isinstance(found, str) and found in str(collection.value)
        if isinstance(collection, FieldRef) and isinstance(item, String | Number):
            target = self.value(collection)
            if isinstance(item, String):
                return (isinstance(target, str) and item.value in target) or (
                    isinstance(target, list) and any(_same(item.value, v) for v in target))
            return isinstance(target, list) and any(_same(item.value, v) for v in target)
        if isinstance(item, FieldRef) and isinstance(collection, Array):
            return found is not None and any(
                _java_str(v) == _java_str(found) for v in self.value(collection))
        if isinstance(item, FieldRef) and isinstance(collection, FieldRef):
            target = self.value(collection)
            if isinstance(found, list | dict):
                return False
            if isinstance(found, str) and isinstance(target, str):
                return found in target
            if isinstance(target, list):
                return any(_same(found, v) for v in target)
            return found is not None and _same(found, target)
        target = self.value(collection)
        if isinstance(target, list):
            return any(_java_str(v) == _java_str(found) for v in target)
        if isinstance(target, str) and isinstance(found, str):
            return found in target
        return found is not None and _same(found, target)

    def _match(self, node: Match) -> bool:
        subject = self.value(node.subject)
        pattern = node.pattern.pattern if isinstance(node.pattern, Regexp) else node.pattern.value
        return isinstance(subject, str) and ruby_regex(pattern).search(subject) is not None


def render(node: Any) -> str:
    """A condition written back as pipeline text."""
    if isinstance(node, FieldRef):
        return node.raw
    if isinstance(node, String | Number | Regexp):
        return node.raw
    if isinstance(node, Bareword):
        return node.value
    if isinstance(node, Array):
        return "[" + ", ".join(render(item) for item in node.items) + "]"
    if isinstance(node, Compare):
        return f"{render(node.left)} {node.op} {render(node.right)}"
    if isinstance(node, In):
        return f"{render(node.item)} {'not in' if node.negated else 'in'} {render(node.collection)}"
    if isinstance(node, Match):
        return f"{render(node.subject)} {node.op} {render(node.pattern)}"
    if isinstance(node, Not):
        inner = render(node.operand)
        return f"!({inner})" if isinstance(node.operand, Condition) else f"!{inner}"
    if isinstance(node, Condition):
        parts = [render(node.operands[0])]
        for operator, operand in zip(node.operators, node.operands[1:], strict=True):
            text = render(operand)
            parts.append(f"{operator} ({text})" if isinstance(operand, Condition) else
                         f"{operator} {text}")
        return " ".join(parts)
    if isinstance(node, MethodCall):
        return f"{node.name}(" + ", ".join(render(a) for a in node.args) + ")"
    return repr(node)


def _combine(operator: str, left: Callable[[], bool], right: Callable[[], bool]
             ) -> Callable[[], bool]:
    if operator == "and":
        return lambda: left() and right()
    if operator == "or":
        return lambda: left() or right()
    if operator == "nand":
        return lambda: not (left() and right())
    return lambda: left() != right()  # xor


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if value is NULL:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


# --- filters -------------------------------------------------------------------------------------

# What a filter the pipeline may use does with the field it reads, from the plugin's source as
# bundled with Logstash 9.5. ``accepts`` says which values are safe; anything else raises outside
# the plugin's own rescue, and Logstash stops the pipeline ("Pipeline worker error").
# - useragent (useragent.rb ``filter``): an array is replaced by its first element, then
#   ``empty?`` is called before the lookup's rescue begins: a number or a boolean raises
#   NoMethodError. A string, nil and an object (rescued around the lookup) are safe. Its results
#   are set under ``target`` ([os], [device], [version]...): a scalar there raises
#   InvalidFieldSetException (``Accessors.setChild``).
# - geoip (GeoIPFilter.java ``handleEvent``): a string, or an array whose first element is a
#   string. Any other value raises IllegalArgumentException, an array starting with a non-string
#   ClassCastException, an empty array IndexOutOfBoundsException. A string that is not an IP
#   literal is looked up in DNS (``InetAddress.getByName``). Results go under [target][geo]: a
#   scalar there raises.
# - mutate: every operation runs inside one rescue (``tag_on_failure``, default _mutate_error).
# - ruby: the code runs inside a rescue (tag _rubyexception).
FieldCheck = Callable[[Any], str | None]


def _string_or_first_string(value: Any) -> str | None:
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(value, list) and not value:
        return None
    if first is None or isinstance(first, str | dict | list):
        return None
    return f"{_kind(first)} has no `empty?`: NoMethodError"


def _geoip_source(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, list):
        if not value:
            return "an empty array: IndexOutOfBoundsException"
        return None if isinstance(value[0], str) else "an array of non-strings: ClassCastException"
    return f"{_kind(value)}: IllegalArgumentException"


FILTER_INPUTS: dict[str, tuple[str, FieldCheck, tuple[str, ...]]] = {
    # plugin: (option naming the field read, check of its value, fields written under target)
    "useragent": ("source", _string_or_first_string, ("os", "device", "version")),
    "geoip": ("source", _geoip_source, ("geo",)),
}


def _text(value: Value | None) -> str | None:
    if isinstance(value, String | Bareword):
        return _ENV.sub(lambda m: m.group(2) or "", value.value)
    return None


def _path(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\[([^\[\]]+)\]", text)) if text.startswith("[") else (text,)


def _strings(value: Value | None) -> list[str]:
    if isinstance(value, Array):
        return [t for item in value.items if (t := _text(item)) is not None]
    text = _text(value)
    return [text] if text is not None else []


def _pairs(value: Value | None) -> list[tuple[str, str]]:
    if isinstance(value, Hash):
        return [(e.key_text.strip("\"'"), _text(e.value) or "") for e in value.entries]
    if isinstance(value, Array):  # the older [key, value, key, value] form
        items = _strings(value)
        return list(zip(items[::2], items[1::2], strict=False))
    return []


def _sprintf(event: dict[str, Any], text: str) -> str:
    """``%{[a][b]}`` references replaced by the field's value; a missing field stays as is."""
    def field_value(m: re.Match[str]) -> str:
        found = _get(event, _path(m.group(1)))
        return m.group(0) if found is None or found is NULL else _java_str(found)
    return _SPRINTF.sub(field_value, text)


_tag = gate.add_tag


def _decorate(event: dict[str, Any], plugin: Plugin) -> None:
    """``filter_matched``: the common options every filter applies when it succeeds."""
    for name, value in _pairs(plugin.get("add_field")):
        _set(event, _path(_sprintf(event, name)), _sprintf(event, value))
    for tag in _strings(plugin.get("add_tag")):
        _tag(event, _sprintf(event, tag))
    for name in _strings(plugin.get("remove_field")):
        _remove(event, _path(_sprintf(event, name)))
    for tag in _strings(plugin.get("remove_tag")):
        if isinstance(event.get("tags"), list):
            event["tags"] = [t for t in event["tags"] if t != tag]


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "boolean": lambda v: {"true": True, "t": True, "yes": True, "y": True, "1": True,
                          "false": False, "f": False, "no": False, "n": False, "0": False}.get(
                              str(v).lower(), v) if isinstance(v, str) else v,
    "string": lambda v: _java_str(v) if not isinstance(v, str) else v,
}


def _mutate(event: dict[str, Any], plugin: Plugin) -> None:
    """The mutate operations that decide later branches, in mutate's own order, inside its
    rescue: what would raise there tags the event instead."""
    try:
        for name, value in _pairs(plugin.get("replace")):
            _set(event, _path(name), _sprintf(event, value))
        for name, kind in _pairs(plugin.get("convert")):
            found = _get(event, _path(name))
            if found is not None and found is not NULL and kind in _CONVERT:
                _set(event, _path(name), _CONVERT[kind](found))
        for name in _strings(plugin.get("strip")):
            found = _get(event, _path(name))
            if isinstance(found, str):
                _set(event, _path(name), found.strip())
            elif isinstance(found, list):
                if not all(isinstance(v, str) for v in found):
                    raise LogstashRaises("strip of a non-string")
                _set(event, _path(name), [v.strip() for v in found])
        _decorate(event, plugin)
    except LogstashRaises:
        for tag in _strings(plugin.get("tag_on_failure")) or ["_mutate_error"]:
            _tag(event, tag)


def _label(plugin: Plugin) -> str:
    plugin_id = _text(plugin.get("id"))
    return f"{plugin.name} ({plugin_id})" if plugin_id else f"{plugin.name} (line {plugin.line})"


def _filter(event: dict[str, Any], plugin: Plugin, result: Route) -> None:
    result.filters.append(_label(plugin))
    result.steps.append(f"line {plugin.line}: filter {_label(plugin)}")
    if plugin.name == "mutate":
        _mutate(event, plugin)
        return
    if _script(plugin) == "type_gate.rb":
        gate.gate(event, _SCHEMA_TREE)
        return
    spec = FILTER_INPUTS.get(plugin.name)
    if spec is None:
        return
    option, check, writes = spec
    source = _text(plugin.get(option))
    if source is None:
        return
    value = _get(event, _path(source))
    value = None if value is NULL else value  # both plugins read a nil as no value
    problem = check(value)
    if problem:
        result.hazards.append(f"line {plugin.line}: {_label(plugin)} reads {source} = "
                              f"{_short(value)}: {problem}; Logstash stops the pipeline")
        return
    target = _text(plugin.get("target"))
    if value is not None and target:
        for child in writes:
            found = _get(event, (*_path(target), child))
            if found is not None and not isinstance(found, dict | list):
                result.hazards.append(
                    f"line {plugin.line}: {_label(plugin)} writes under {target}[{child}], "
                    f"which is {_kind(found)}: InvalidFieldSetException; Logstash stops the "
                    "pipeline")


def _script(plugin: Plugin) -> str | None:
    """The file name of a ruby filter's script (logstash/scripts/), when it runs one."""
    path = _text(plugin.get("path")) if plugin.name == "ruby" else None
    return path.rsplit("/", 1)[-1] if path else None


_SCHEMA_TREE = gate.tree(schema.field_types())


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# --- outputs ------------------------------------------------------------------------------------


def _output(event: dict[str, Any], plugin: Plugin, result: Route) -> None:
    label = _label(plugin)
    if plugin.name == "elasticsearch" and (_text(plugin.get("data_stream")) or "") == "true":
        parts = [_text(plugin.get(f"data_stream_{p}")) or d
                 for p, d in (("type", "logs"), ("dataset", "generic"), ("namespace", "default"))]
        label += " -> " + "-".join(parts)
    result.outputs.append(label)
    result.steps.append(f"line {plugin.line}: output {label}")


# --- walking ----------------------------------------------------------------------------------------


def _walk(body: tuple[Statement, ...], evaluator: _Evaluator, result: Route,
          visit: Callable[[dict[str, Any], Plugin, Route], None]) -> None:
    for statement in body:
        if isinstance(statement, Plugin):
            visit(evaluator.event, statement, result)
            continue
        assert isinstance(statement, Branch)
        for clause in statement.clauses:
            if clause.condition is None:
                result.steps.append(f"line {clause.line}: else")
                _walk(clause.body, evaluator, result, visit)
                break
            try:
                taken = evaluator.condition(clause.condition)
            except LogstashRaises as exc:
                result.hazards.append(str(exc))
                taken = False
            text = render(clause.condition)
            text = text if len(text) <= 100 else text[:97] + "..."
            result.steps.append(f"line {clause.line}: {clause.keyword} {text} -> "
                                f"{'taken' if taken else 'not taken'}")
            if taken:
                _walk(clause.body, evaluator, result, visit)
                break


def route(config: Config, event: dict[str, Any]) -> Route:
    """Evaluate the filter and output sections of ``config`` on one decoded ``event`` (a copy
    is changed as the simulated filters change it)."""
    filters = [s for section in config.sections if section.kind == "filter" for s in section.body]
    outputs = [s for section in config.sections if section.kind == "output" for s in section.body]
    return _route(json.loads(json.dumps(event)), tuple(filters), tuple(outputs))


def _route(event: dict[str, Any], filters: tuple[Statement, ...],
           outputs: tuple[Statement, ...]) -> Route:
    result = Route(event)
    evaluator = _Evaluator(event, result.hazards)
    for index, statement in enumerate(filters):
        if isinstance(statement, Plugin) and _script(statement) == "split_batch.rb":
            result.filters.append(_label(statement))
            result.steps.append(f"line {statement.line}: filter {_label(statement)}")
            made = gate.split(event, _new_event)
            if made is not None:
                # The new events go on from the next filter, as Logstash passes on what a
                # filter yields; the original is cancelled.
                result.spawned = [_route(e, filters[index + 1:], outputs) for e in made]
                for number, child in enumerate(result.spawned, 1):
                    child.steps[:0] = [*result.steps, f"element {number} of {len(made)}"]
                return result
            continue
        _walk((statement,), evaluator, result, _filter)
    _walk(outputs, evaluator, result, _output)
    return result


# --- inputs -----------------------------------------------------------------------------------------


def _new_event(data: Any) -> dict[str, Any]:
    """``new org.logstash.Event(map)``: @metadata leaves the document, illegal tags move to
    [_tags], and an @timestamp that does not parse moves to [_@timestamp]."""
    if not isinstance(data, dict):
        raise TypeError(f"{_kind(data)} is not an event")
    event = dict(data)
    # A null @metadata fails too: Logstash casts whatever is there to a map.
    if "@metadata" in event and not isinstance(event.pop("@metadata"), dict):
        raise TypeError("@metadata is not an object")
    event.setdefault("@version", "1")
    tags = event.get("tags")
    # A null there is Ruby nil, which is no legal tags value either (a real Logstash 9.5.2
    # dead-lettered {"tags": null}).
    if "tags" in event and not (isinstance(tags, str) or (
            isinstance(tags, list) and all(isinstance(t, str) for t in tags))):
        event["_tags"] = [tags]
        event["tags"] = ["_tagsparsefailure"]
    stamp = event.get("@timestamp")
    if stamp is not None and not _iso8601(stamp):
        _tag(event, "_timestampparsefailure")
        event["_@timestamp"] = stamp
    return event


def _iso8601(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Jackson refuses NaN and Infinity


def _failure(body: str) -> dict[str, Any]:
    return {"message": body, "tags": ["_jsonparsefailure"], "@version": "1"}


def decode(body: str, input: str = "http") -> list[dict[str, Any]]:
    """The events an input makes of a request body (``http``, json codec) or of what arrives on
    a connection (``tcp``, json_lines codec: each line on its own). A body the codec cannot
    turn into events (not JSON, a scalar, an array with one non-object) is one event tagged
    _jsonparsefailure holding the raw text."""
    chunks = [line for line in body.split("\n") if line.strip()] if input == "tcp" else [body]
    events: list[dict[str, Any]] = []
    for chunk in chunks:
        if not chunk.strip():
            continue
        try:
            data = json.loads(chunk, parse_constant=_no_constant)
            items = data if isinstance(data, list) else [data]
            events.extend([_new_event(item) for item in items])  # all of them, or none
        except (ValueError, TypeError, RecursionError):
            events.append(_failure(chunk))
    return events


def explain(config: Config, body: str, input: str = "http") -> Iterator[Route]:
    """The route of every event the body becomes, those a filter split it into included (the
    split event itself is left out: Logstash cancels it)."""
    def leaves(result: Route) -> Iterator[Route]:
        if not result.spawned:
            yield result
        for child in result.spawned:
            yield from leaves(child)

    for event in decode(body, input):
        yield from leaves(route(config, event))
