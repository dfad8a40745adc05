"""A parser for Logstash's pipeline configuration language (LSCL), faithful to Logstash 9.5."""
from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Union

__all__ = [
    "Array",
    "Attribute",
    "Bareword",
    "Branch",
    "Clause",
    "Comment",
    "Compare",
    "Condition",
    "Config",
    "ConfigError",
    "Expression",
    "FieldRef",
    "Hash",
    "HashEntry",
    "In",
    "Match",
    "MethodCall",
    "Not",
    "Number",
    "Plugin",
    "Regexp",
    "Rvalue",
    "Section",
    "Statement",
    "String",
    "Value",
    "iter_conditions",
    "iter_field_refs",
    "iter_plugins",
    "parse",
    "parse_file",
]

# The rules below restate elastic/logstash's
# logstash-core/lib/logstash/compiler/lscl/lscl_grammar.treetop (a PEG: ordered choice, no
# tokenizer) and the extra checks of compiler/lscl.rb. Where they disagree with intuition (no
# commas between options, `not ` needing a literal space, one-element lists in conditions being
# field references) the parser follows Logstash, not intuition.


class ConfigError(ValueError):
    """The configuration is not valid LSCL, or Logstash's compiler would reject it."""

    def __init__(self, message: str, line: int, column: int, source: str | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}line {line}, column {column}: {message}")


# --- the syntax tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class String:
    """A quoted string. ``value`` has the quotes removed (and escapes applied if enabled)."""

    value: str
    raw: str
    line: int
    column: int


@dataclass(frozen=True)
class Number:
    value: int | float
    raw: str
    line: int
    column: int


@dataclass(frozen=True)
class Bareword:
    """An unquoted word, at least two characters long; Logstash treats it as a string."""

    value: str
    line: int
    column: int


@dataclass(frozen=True)
class Array:
    items: tuple[Value, ...]
    line: int
    column: int


@dataclass(frozen=True)
class HashEntry:
    key: String | Number | Bareword
    value: Value
    line: int
    column: int

    @property
    def key_text(self) -> str:
        """The key as Logstash compares keys for duplicates: its source text."""
        return self.key.raw if isinstance(self.key, String | Number) else self.key.value


@dataclass(frozen=True)
class Hash:
    entries: tuple[HashEntry, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Attribute:
    """One ``name => value`` option of a plugin."""

    name: str
    value: Value
    line: int
    column: int


@dataclass(frozen=True)
class Plugin:
    """A plugin block; also the value of an option such as ``codec => json { ... }``."""

    name: str
    attributes: tuple[Attribute, ...]
    line: int
    column: int

    def get(self, name: str) -> Value | None:
        """The last value given for option ``name``, or None."""
        found = None
        for attribute in self.attributes:
            if attribute.name == name:
                found = attribute.value
        return found


Value = Union[String, Number, Bareword, Array, Hash, Plugin]  # noqa: UP007


@dataclass(frozen=True)
class FieldRef:
    """A field reference in a condition such as ``[event][action]``; ``path`` holds the parts."""

    raw: str
    path: tuple[str, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Regexp:
    pattern: str
    raw: str
    line: int
    column: int


@dataclass(frozen=True)
class MethodCall:
    """Accepted by the grammar, but Logstash's compiler has no implementation for it."""

    name: str
    args: tuple[Rvalue, ...]
    line: int
    column: int


Rvalue = Union[String, Number, FieldRef, Array, MethodCall, Regexp]  # noqa: UP007


@dataclass(frozen=True)
class Compare:
    left: Rvalue
    op: str
    right: Rvalue
    line: int
    column: int


@dataclass(frozen=True)
class In:
    item: Rvalue
    collection: Rvalue
    negated: bool
    line: int
    column: int


@dataclass(frozen=True)
class Match:
    """``subject =~ pattern`` or ``subject !~ pattern``."""

    subject: Rvalue
    op: str
    pattern: String | Regexp
    line: int
    column: int


@dataclass(frozen=True)
class Not:
    operand: Condition | FieldRef
    line: int
    column: int


@dataclass(frozen=True)
class Condition:
    """Expressions joined by boolean operators at one level of parentheses."""

    operands: tuple[Expression, ...]
    operators: tuple[str, ...]
    line: int
    column: int


Expression = Union[Condition, Not, In, Compare, Match, Rvalue]  # noqa: UP007


@dataclass(frozen=True)
class Clause:
    """One arm of a branch: ``if``, ``else if`` or ``else`` (condition None)."""

    keyword: str
    condition: Condition | None
    body: tuple[Statement, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Branch:
    clauses: tuple[Clause, ...]
    line: int
    column: int


Statement = Union[Plugin, Branch]  # noqa: UP007


@dataclass(frozen=True)
class Section:
    kind: str  # input, filter or output
    body: tuple[Statement, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Comment:
    text: str
    line: int
    column: int


@dataclass(frozen=True)
class Config:
    sections: tuple[Section, ...]
    comments: tuple[Comment, ...]
    source: str | None = None


# --- walking the tree ----------------------------------------------------------------------------


def _statements(body: tuple[Statement, ...]) -> Iterator[Plugin | Clause]:
    for statement in body:
        if isinstance(statement, Plugin):
            yield statement
        else:
            for clause in statement.clauses:
                yield clause
                yield from _statements(clause.body)


def iter_plugins(config: Config) -> Iterator[tuple[str, Plugin]]:
    """Every plugin block as (section kind, plugin), in source order. Codecs are option values."""
    for section in config.sections:
        for item in _statements(section.body):
            if isinstance(item, Plugin):
                yield section.kind, item


def iter_conditions(config: Config) -> Iterator[Condition]:
    """The condition of every ``if`` and ``else if``, in source order."""
    for section in config.sections:
        for item in _statements(section.body):
            if isinstance(item, Clause) and item.condition is not None:
                yield item.condition


def iter_field_refs(expression: Expression) -> Iterator[FieldRef]:
    """Every field reference inside a condition expression."""
    if isinstance(expression, FieldRef):
        yield expression
    elif isinstance(expression, Condition):
        for operand in expression.operands:
            yield from iter_field_refs(operand)
    elif isinstance(expression, Not):
        yield from iter_field_refs(expression.operand)
    elif isinstance(expression, In):
        yield from iter_field_refs(expression.item)
        yield from iter_field_refs(expression.collection)
    elif isinstance(expression, Compare):
        yield from iter_field_refs(expression.left)
        yield from iter_field_refs(expression.right)
    elif isinstance(expression, Match):
        yield from iter_field_refs(expression.subject)
    elif isinstance(expression, MethodCall):
        for arg in expression.args:
            yield from iter_field_refs(arg)


# --- the parser ----------------------------------------------------------------------------------

_WS = " \t\r\n"
_IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT = _IDENT_START | frozenset("0123456789")
_NAME = _IDENT | frozenset("-")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]*)?")
# The escapes Logstash's StringEscape applies when config.support_escapes is on; others stay.
_ESCAPE = re.compile(r"\\.")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "0": "\x00"}
_BOOLEAN_OPERATORS = ("and", "or", "xor", "nand")
_COMPARE_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")


class _NoMatch(Exception):
    """A grammar rule did not match here; the caller backtracks."""


class _Parser:
    def __init__(self, text: str, source: str | None, support_escapes: bool) -> None:
        self.text = text
        self.n = len(text)
        self.source = source
        self.support_escapes = support_escapes
        # Like treetop, report the failure that got furthest into the text.
        self.far = 0
        self.expected: set[str] = set()
        self.hints: dict[int, dict[str, int]] = {}
        self.comments: dict[int, Comment] = {}
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    # -- bookkeeping --

    def loc(self, pos: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.line_starts, pos) - 1
        return index + 1, pos - self.line_starts[index] + 1

    def expect(self, pos: int, what: str) -> None:
        if pos > self.far:
            self.far, self.expected = pos, {what}
        elif pos == self.far:
            self.expected.add(what)

    def fail(self, pos: int, what: str) -> NoReturn:
        self.expect(pos, what)
        raise _NoMatch

    def hint(self, at: int, where: int, message: str) -> None:
        """Explain a failure that reaches ``at``; ``where`` is the offending token."""
        self.hints.setdefault(at, {}).setdefault(message, where)

    def push(self) -> tuple[int, set[str]]:
        """Start measuring how far one attempt gets on its own."""
        saved = (self.far, self.expected)
        self.far, self.expected = -1, set()
        return saved

    def pop(self, saved: tuple[int, set[str]]) -> int:
        reach = self.far
        far, expected = saved
        if reach < far:
            self.far, self.expected = far, expected
        elif reach == far:
            self.expected |= expected
        return reach

    def error(self) -> ConfigError:
        hints = self.hints.get(self.far)
        if hints:
            message, where = next(iter(hints.items()))
            return ConfigError(message, *self.loc(where), self.source)
        found = "end of input" if self.far >= self.n else repr(self.text[self.far])
        expected = sorted(self.expected)
        if len(expected) > 1:
            wanted = ", ".join(expected[:-1]) + " or " + expected[-1]
        else:
            wanted = expected[0] if expected else "something else"
        message = f"unexpected {found}; expected {wanted}"
        return ConfigError(message, *self.loc(self.far), self.source)

    def lit(self, pos: int, literal: str) -> int:
        if self.text.startswith(literal, pos):
            return pos + len(literal)
        self.fail(pos, f'"{literal}"')

    def ident_at(self, pos: int) -> str:
        end = pos
        while end < self.n and self.text[end] in _IDENT:
            end += 1
        word = self.text[pos:end]
        return word if word and word[0] in _IDENT_START else ""

    # -- whitespace and comments --

    def comment(self, pos: int) -> int | None:
        q = pos
        while q < self.n and self.text[q] in _WS:
            q += 1
        if q >= self.n or self.text[q] != "#":
            return None
        start = q
        while q < self.n and self.text[q] not in "\r\n":
            q += 1
        text = self.text[start:q]
        # Since elastic/logstash#16058 a comment may also end at the end of the input.
        if q < self.n:
            if self.text.startswith("\r\n", q):
                q += 2
            elif self.text[q] == "\n":
                q += 1
            else:
                return None
        self.comments.setdefault(start, Comment(text, *self.loc(start)))
        return q

    def cs(self, pos: int) -> int:
        """Optional comments and whitespace."""
        while True:
            q = self.comment(pos)
            if q is None:
                q = pos
                while q < self.n and self.text[q] in _WS:
                    q += 1
                if q == pos:
                    return pos
            pos = q

    def whitespace(self, pos: int) -> int:
        q = pos
        while q < self.n and self.text[q] in _WS:
            q += 1
        if q == pos:
            self.fail(pos, "whitespace")
        return q

    # -- structure --

    def config(self) -> Config:
        sections: list[Section] = []
        pos = 0
        while True:
            q = self.cs(pos)
            try:
                section, q = self.plugin_section(q)
            except _NoMatch:
                break
            sections.append(section)
            pos = q
        pos = self.cs(pos)
        if pos < self.n:
            raise self.error()
        comments = tuple(self.comments[k] for k in sorted(self.comments))
        return Config(tuple(sections), comments, self.source)

    def plugin_section(self, pos: int) -> tuple[Section, int]:
        for kind in ("input", "filter", "output"):
            if self.text.startswith(kind, pos):
                break
            self.expect(pos, f'"{kind}"')
        else:
            raise _NoMatch
        q = self.cs(pos + len(kind))
        q = self.lit(q, "{")
        body, q = self.block_body(self.cs(q))
        q = self.lit(q, "}")
        return Section(kind, body, *self.loc(pos)), q

    def block_body(self, pos: int) -> tuple[tuple[Statement, ...], int]:
        items: list[Statement] = []
        while True:
            try:
                item, q = self.branch_or_plugin(pos)
            except _NoMatch:
                return tuple(items), pos
            items.append(item)
            pos = self.cs(q)

    def branch_or_plugin(self, pos: int) -> tuple[Statement, int]:
        try:
            return self.branch(pos)
        except _NoMatch:
            return self.plugin(pos)

    def plugin(self, pos: int) -> tuple[Plugin, int]:
        name, q = self.name(pos)
        q = self.cs(q)
        if name in ("elsif", "elif") and not self.text.startswith("{", q):
            self.hint(q, pos, f"`{name}` is not a keyword; Logstash writes `else if`")
        q = self.lit(q, "{")
        q = self.cs(q)
        attributes: list[Attribute] = []
        try:
            attribute, q = self.attribute(q)
            attributes.append(attribute)
            while True:
                try:
                    r = self.cs(self.whitespace(q))
                    attribute, r = self.attribute(r)
                except _NoMatch:
                    break
                attributes.append(attribute)
                q = r
        except _NoMatch:
            pass
        q = self.cs(q)
        if self.text.startswith(",", q):
            self.hint(q, q, "commas are not allowed between plugin options; "
                      "separate `name => value` pairs with spaces or newlines")
        q = self.lit(q, "}")
        return Plugin(name, tuple(attributes), *self.loc(pos)), q

    def name(self, pos: int) -> tuple[str, int]:
        q = pos
        while q < self.n and self.text[q] in _NAME:
            q += 1
        if q > pos:
            return self.text[pos:q], q
        self.expect(pos, "a name")
        string, q = self.string(pos)
        # Attribute and plugin names in quotes are used verbatim, without escape processing.
        return string.raw[1:-1], q

    def attribute(self, pos: int) -> tuple[Attribute, int]:
        name, q = self.name(pos)
        q = self.cs(q)
        q = self.lit(q, "=>")
        value, q = self.value(self.cs(q))
        return Attribute(name, value, *self.loc(pos)), q

    # -- values --

    def value(self, pos: int) -> tuple[Value, int]:
        saved = self.push()
        try:
            for alternative in (self.plugin, self.bareword, self.string, self.number,
                                self.array, self.hash):
                try:
                    return alternative(pos)
                except _NoMatch:
                    continue
        finally:
            reach = self.pop(saved)
        word = self.ident_at(pos)
        if len(word) == 1:
            self.hint(reach, pos, f"`{word}` is a one-character bareword; barewords need at least "
                      f"2 characters, so quote it: \"{word}\"")
        raise _NoMatch

    def bareword(self, pos: int) -> tuple[Bareword, int]:
        word = self.ident_at(pos)
        if len(word) < 2:
            self.fail(pos + len(word), "a bareword" if not word else "[A-Za-z0-9_]")
        return Bareword(word, *self.loc(pos)), pos + len(word)

    def string(self, pos: int) -> tuple[String, int]:
        quote = self.text[pos] if pos < self.n else ""
        if quote not in ('"', "'"):
            self.fail(pos, "a string")
        q = pos + 1
        while True:
            if q >= self.n:
                self.hint(self.n, pos, "this string is never closed")
                self.fail(q, f"{quote} to close the string")
            ch = self.text[q]
            # The grammar skips a backslash-quote pair; any other backslash is an ordinary char,
            # so a string cannot end with a backslash.
            if ch == "\\" and self.text.startswith(quote, q + 1):
                q += 2
            elif ch == quote:
                break
            else:
                q += 1
        raw = self.text[pos:q + 1]
        inner = raw[1:-1]
        if self.support_escapes:
            inner = _ESCAPE.sub(lambda m: _ESCAPES.get(m.group()[1], m.group()), inner)
        return String(inner, raw, *self.loc(pos)), q + 1

    def number(self, pos: int) -> tuple[Number, int]:
        match = _NUMBER.match(self.text, pos)
        if not match:
            self.fail(pos, "a number")
        raw = match.group()
        value: int | float = float(raw) if "." in raw else int(raw)
        return Number(value, raw, *self.loc(pos)), match.end()

    def array(self, pos: int) -> tuple[Array, int]:
        q = self.cs(self.lit(pos, "["))
        items: list[Value] = []
        try:
            item, q = self.value(q)
            items.append(item)
            while True:
                try:
                    r = self.cs(self.lit(self.cs(q), ","))
                    item, r = self.value(r)
                except _NoMatch:
                    break
                items.append(item)
                q = r
        except _NoMatch:
            pass
        r = self.cs(q)
        if items and self.text.startswith(",", r):
            end = self.cs(r + 1)
            if self.text.startswith("]", end):
                self.hint(end, r, "a list cannot end with a comma")
        q = self.lit(r, "]")
        return Array(tuple(items), *self.loc(pos)), q

    def hash(self, pos: int) -> tuple[Hash, int]:
        q = self.cs(self.lit(pos, "{"))
        entries: list[HashEntry] = []
        try:
            entry, q = self.hash_entry(q)
            entries.append(entry)
            while True:
                try:
                    entry, r = self.hash_entry(self.cs(q))
                except _NoMatch:
                    break
                entries.append(entry)
                q = r
        except _NoMatch:
            pass
        q = self.cs(q)
        if entries and self.text.startswith(",", q):
            self.hint(q, q, "commas are not allowed between hash entries; "
                      "separate `key => value` pairs with spaces or newlines")
        q = self.lit(q, "}")
        return Hash(tuple(entries), *self.loc(pos)), q

    def hash_entry(self, pos: int) -> tuple[HashEntry, int]:
        key: String | Number | Bareword
        try:
            key, q = self.number(pos)
        except _NoMatch:
            try:
                key, q = self.bareword(pos)
            except _NoMatch:
                word = self.ident_at(pos)
                if len(word) == 1:
                    self.hint(pos + 1, pos, f"`{word}` is a one-character bareword; barewords "
                              f"need at least 2 characters, so quote the key: \"{word}\"")
                key, q = self.string(pos)
        q = self.lit(self.cs(q), "=>")
        value, q = self.value(self.cs(q))
        return HashEntry(key, value, *self.loc(pos)), q

    # -- branches and conditions --

    def branch(self, pos: int) -> tuple[Branch, int]:
        clauses: list[Clause] = []
        q = self.lit(pos, "if")
        condition, q = self.condition(self.cs(q))
        body, q = self.clause_body(self.cs(q))
        clauses.append(Clause("if", condition, body, *self.loc(pos)))
        while True:
            start = self.cs(q)
            try:
                r = self.lit(self.cs(self.lit(start, "else")), "if")
                condition, r = self.condition(self.cs(r))
                body, r = self.clause_body(self.cs(r))
            except _NoMatch:
                break
            clauses.append(Clause("else if", condition, body, *self.loc(start)))
            q = r
        start = self.cs(q)
        try:
            r = self.cs(self.lit(start, "else"))
            body, r = self.clause_body(r)
            clauses.append(Clause("else", None, body, *self.loc(start)))
            q = r
        except _NoMatch:
            pass
        return Branch(tuple(clauses), *self.loc(pos)), q

    def clause_body(self, pos: int) -> tuple[tuple[Statement, ...], int]:
        q = self.cs(self.lit(pos, "{"))
        body, q = self.block_body(q)
        return body, self.lit(q, "}")

    def condition(self, pos: int) -> tuple[Condition, int]:
        expression, q = self.expression(pos)
        operands: list[Expression] = [expression]
        operators: list[str] = []
        while True:
            r = self.cs(q)
            try:
                operator, r = self.boolean_operator(r)
                expression, r = self.expression(self.cs(r))
            except _NoMatch:
                r = self.cs(q)
                symbol = self.text[r:r + 2]
                if symbol in ("&&", "||"):
                    word = "and" if symbol == "&&" else "or"
                    self.hint(r, r, f"Logstash conditions use `{word}`, not `{symbol}`")
                break
            operators.append(operator)
            operands.append(expression)
            q = r
        return Condition(tuple(operands), tuple(operators), *self.loc(pos)), q

    def boolean_operator(self, pos: int) -> tuple[str, int]:
        for operator in _BOOLEAN_OPERATORS:
            if self.text.startswith(operator, pos):
                return operator, pos + len(operator)
            self.expect(pos, f'"{operator}"')
        raise _NoMatch

    def expression(self, pos: int) -> tuple[Expression, int]:
        loc = self.loc(pos)
        if self.text.startswith("(", pos):
            try:
                inner, q = self.condition(self.cs(pos + 1))
                return inner, self.lit(self.cs(q), ")")
            except _NoMatch:
                pass
        else:
            self.expect(pos, '"("')
        try:
            return self.negative(pos)
        except _NoMatch:
            pass
        try:
            item, q = self.rvalue(pos)
            collection, q = self.rvalue(self.cs(self.lit(self.cs(q), "in")))
            return In(item, collection, False, *loc), q
        except _NoMatch:
            pass
        try:
            item, q = self.rvalue(pos)
            q = self.lit(self.cs(self.lit(self.cs(q), "not ")), "in")
            collection, q = self.rvalue(self.cs(q))
            return In(item, collection, True, *loc), q
        except _NoMatch:
            pass
        try:
            left, q = self.rvalue(pos)
            q = self.cs(q)
            operator = next((op for op in _COMPARE_OPERATORS if self.text.startswith(op, q)), "")
            if not operator:
                for op in _COMPARE_OPERATORS:
                    self.expect(q, f'"{op}"')
                if self.text.startswith("=", q) and not self.text.startswith("=~", q):
                    self.hint(q, q, "use `==` to compare; a single `=` is not an operator")
                raise _NoMatch
            right, q = self.rvalue(self.cs(q + len(operator)))
            return Compare(left, operator, right, *loc), q
        except _NoMatch:
            pass
        try:
            subject, q = self.rvalue(pos)
            q = self.cs(q)
            operator = self.text[q:q + 2]
            if operator not in ("=~", "!~"):
                self.expect(q, '"=~"')
                self.fail(q, '"!~"')
            q = self.cs(q + 2)
            pattern: String | Regexp
            try:
                pattern, q = self.string(q)
            except _NoMatch:
                pattern, q = self.regexp(q)
            return Match(subject, operator, pattern, *loc), q
        except _NoMatch:
            pass
        return self.rvalue(pos)

    def negative(self, pos: int) -> tuple[Not, int]:
        q = self.cs(self.lit(pos, "!"))
        if self.text.startswith("(", q):
            try:
                inner, r = self.condition(self.cs(q + 1))
                return Not(inner, *self.loc(pos)), self.lit(self.cs(r), ")")
            except _NoMatch:
                pass
        else:
            self.expect(q, '"("')
        selector, q = self.selector(q)
        return Not(selector, *self.loc(pos)), q

    def rvalue(self, pos: int) -> tuple[Rvalue, int]:
        for alternative in (self.string, self.number, self.selector, self.array):
            try:
                return alternative(pos)
            except _NoMatch:
                continue
        saved = self.push()
        try:
            return self.method_call(pos)
        except _NoMatch:
            pass
        finally:
            reach = self.pop(saved)
        word = self.ident_at(pos)
        if word:
            if word in ("true", "false"):
                message = (f"conditions have no boolean literals: compare with the string "
                           f"\"{word}\", or test a field with `if [field]`")
            else:
                message = (f"bareword `{word}` cannot be an operand in a condition: quote it "
                           f"(\"{word}\") to compare with a string, or write [{word}] for a field")
            self.hint(reach, pos, message)
        return self.regexp(pos)

    def selector(self, pos: int) -> tuple[FieldRef, int]:
        q = pos
        path: list[str] = []
        while self.text.startswith("[", q):
            end = q + 1
            while end < self.n and self.text[end] not in "[],":
                end += 1
            if end == q + 1 or not self.text.startswith("]", end):
                self.expect(end, '"]"' if end > q + 1 else "a field name")
                break
            path.append(self.text[q + 1:end])
            q = end + 1
        if not path:
            self.fail(pos, "a field reference")
        return FieldRef(self.text[pos:q], tuple(path), *self.loc(pos)), q

    def method_call(self, pos: int) -> tuple[MethodCall, int]:
        name, q = self.bareword(pos)
        q = self.cs(self.lit(self.cs(q), "("))
        args: list[Rvalue] = []
        try:
            arg, q = self.rvalue(q)
            args.append(arg)
            while True:
                try:
                    arg, r = self.rvalue(self.cs(self.lit(self.cs(q), ",")))
                except _NoMatch:
                    break
                args.append(arg)
                q = r
        except _NoMatch:
            pass
        q = self.lit(self.cs(q), ")")
        return MethodCall(name.value, tuple(args), *self.loc(pos)), q

    def regexp(self, pos: int) -> tuple[Regexp, int]:
        q = self.lit(pos, "/")
        while True:
            if q >= self.n:
                self.hint(self.n, pos, "this regular expression is never closed")
                self.fail(q, '"/" to close the regular expression')
            if self.text.startswith("\\/", q):
                q += 2
            elif self.text[q] == "/":
                break
            else:
                q += 1
        raw = self.text[pos:q + 1]
        return Regexp(raw[1:-1], raw, *self.loc(pos)), q + 1


# --- rules the compiler enforces after parsing (compiler/lscl.rb) --------------------------------


def _literal(node: object) -> bool:
    return isinstance(node, String | Number | Array | Regexp)


def _check_expression(
    expression: Expression, errors: list[ConfigError], source: str | None
) -> None:
    def add(message: str, node: Expression) -> None:
        errors.append(ConfigError(message, node.line, node.column, source))

    if isinstance(expression, Condition):
        operators = expression.operators
        # Condition#join_conditions asks precedence() of every operator once a second one
        # appears, and precedence() only knows `and` and `or`: so any chain of two or more
        # operators that contains xor or nand fails, even `a xor b xor c`.
        odd = sorted({op for op in operators if op in ("xor", "nand")})
        if len(operators) > 1 and odd:
            add(f"`{odd[0]}` cannot share a level with another boolean operator (Logstash's "
                f"compiler rejects even `[a] {odd[0]} [b] {odd[0]} [c]`); group with parentheses, "
                f"e.g. ([a] {odd[0]} [b]) and [c]", expression)
        for operand in expression.operands:
            if _literal(operand):
                add("a literal value cannot be a condition on its own; compare it with a field, "
                    "for example [field] == \"value\"", operand)
            _check_expression(operand, errors, source)
    elif isinstance(expression, Not):
        _check_expression(expression.operand, errors, source)
    elif isinstance(expression, Compare):
        for side in (expression.left, expression.right):
            if isinstance(side, Array | Regexp):
                kind = "a list" if isinstance(side, Array) else "a regular expression"
                hint = "use `in`" if isinstance(side, Array) else "use `=~`"
                add(f"`{expression.op}` cannot compare with {kind}; {hint}", side)
            _check_expression(side, errors, source)
    elif isinstance(expression, In):
        _check_expression(expression.item, errors, source)
        _check_expression(expression.collection, errors, source)
    elif isinstance(expression, Match):
        if not isinstance(expression.subject, FieldRef):
            add(f"the left side of `{expression.op}` must be a field reference such as [field]",
                expression.subject)
        _check_expression(expression.subject, errors, source)
    elif isinstance(expression, MethodCall):
        add(f"method calls such as `{expression.name}(...)` are accepted by the grammar but not "
            "implemented by Logstash's compiler", expression)


def _check_value(value: Value, errors: list[ConfigError], source: str | None) -> None:
    if isinstance(value, Number) and value.raw.endswith("."):
        errors.append(ConfigError(f"`{value.raw}` is not a number Logstash can read; write "
                                  f"{value.raw}0 or {value.raw[:-1]}", value.line, value.column,
                                  source))
    elif isinstance(value, Array):
        for item in value.items:
            _check_value(item, errors, source)
    elif isinstance(value, Hash):
        seen: dict[str, HashEntry] = {}
        for entry in value.entries:
            first = seen.setdefault(entry.key_text, entry)
            if first is not entry:
                errors.append(ConfigError(
                    f"duplicate key {entry.key_text} in hash (first given at line {first.line}); "
                    "Logstash rejects duplicate keys", entry.line, entry.column, source))
            _check_value(entry.key, errors, source)
            _check_value(entry.value, errors, source)
    elif isinstance(value, Plugin):
        for attribute in value.attributes:
            _check_value(attribute.value, errors, source)


def _check_body(body: tuple[Statement, ...], errors: list[ConfigError], source: str | None) -> None:
    for statement in body:
        if isinstance(statement, Plugin):
            _check_value(statement, errors, source)
            continue
        for clause in statement.clauses:
            if clause.condition is not None:
                _check_expression(clause.condition, errors, source)
            _check_body(clause.body, errors, source)


def parse(text: str, *, source: str | None = None, support_escapes: bool = False) -> Config:
    """Parse pipeline configuration text; raise ConfigError with line and column if invalid.

    ``support_escapes`` mirrors Logstash's ``config.support_escapes`` setting (off by default):
    when off, a string's value is its text between the quotes, backslashes included.
    """
    config = _Parser(text, source, support_escapes).config()
    errors: list[ConfigError] = []
    for section in config.sections:
        _check_body(section.body, errors, source)
    if errors:
        raise min(errors, key=lambda e: (e.line, e.column))
    return config


def parse_file(path: str | Path, *, support_escapes: bool = False) -> Config:
    """Parse one pipeline file; Logstash compiles each file of a pipeline on its own."""
    return parse(Path(path).read_text(encoding="utf-8"), source=str(path),
                 support_escapes=support_escapes)
