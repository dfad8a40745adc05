"""The registry of event types: each declared once, keyed by URL name, signal, model or browser name."""
from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.dispatch import Signal

from eventtrail import schema

Fields = dict[str, Any]
# Worker-side hook: URL kwargs -> extra dotted fields (e.g. a community id from its slug).
ContextHook = Callable[[Mapping[str, Any]], Mapping[str, Any]]
# Signal hook: the signal's keyword arguments -> dotted fields, or None to record nothing.
SignalHook = Callable[..., Fields | None]
# Model hook: the saved instance -> dotted fields (community, target...).
ModelHook = Callable[[Any], Fields]

Key = Literal["url", "signal", "model", "state", "browser"]
ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
BROWSER_FIELD_TYPES = {"long": int, "float": float, "keyword": str, "boolean": bool}


class RegistryError(ValueError):
    """A declaration that cannot work."""


@dataclass(frozen=True)
class EventType:
    """One declared event type."""

    action: str
    key: Key
    category: tuple[str, ...] = ("web",)
    type: tuple[str, ...] = ("access",)
    description: str = ""
    # url
    url_name: str | None = None
    methods: tuple[str, ...] = ("GET",)
    community_kwarg: str | None = None
    target_type: str | None = None
    target_kwarg: str | None = None
    search_param: str | None = None
    context: ContextHook | None = None
    # signal
    signal: Signal | None = None
    sender: Any = None
    handler: SignalHook | None = None
    # model / state
    model: str | None = None
    field_name: str | None = None
    fields: ModelHook | None = None
    condition: Callable[[Any], bool] | None = None
    # browser: allowed payload fields, schema name -> python type
    browser_fields: Mapping[str, builtins.type] = field(default_factory=dict)


class Registry:
    """Holds every declared type; looked up by action, URL name and model label."""

    def __init__(self) -> None:
        self.by_action: dict[str, EventType] = {}
        self.by_url_name: dict[str, EventType] = {}
        self.by_model: dict[str, list[EventType]] = {}
        self.browser: dict[str, EventType] = {}
        self._listeners: list[Callable[[EventType], None]] = []

    def add(self, event_type: EventType) -> EventType:
        if not ACTION_RE.match(event_type.action):
            raise RegistryError(
                f"event type {event_type.action!r}: actions are dotted lowercase, e.g. article.view"
            )
        if event_type.action in self.by_action:
            raise RegistryError(f"event type {event_type.action!r} is declared twice")
        if event_type.url_name:
            if event_type.url_name in self.by_url_name:
                other = self.by_url_name[event_type.url_name].action
                raise RegistryError(
                    f"URL name {event_type.url_name!r} already keys event type {other!r}"
                )
            self.by_url_name[event_type.url_name] = event_type
        if event_type.model:
            self.by_model.setdefault(event_type.model.lower(), []).append(event_type)
        if event_type.key == "browser":
            self.browser[event_type.action] = event_type
        self.by_action[event_type.action] = event_type
        for listener in self._listeners:
            listener(event_type)
        return event_type

    def remove(self, action: str) -> None:
        """Forget a type (tests that declare their own)."""
        event_type = self.by_action.pop(action)
        self.by_url_name.pop(event_type.url_name or "", None)
        self.browser.pop(action, None)
        if event_type.model:
            self.by_model[event_type.model.lower()].remove(event_type)

    def on_add(self, listener: Callable[[EventType], None]) -> None:
        self._listeners.append(listener)
        for event_type in list(self.by_action.values()):
            listener(event_type)

    def actions(self) -> set[str]:
        return set(self.by_action)


registry = Registry()


def _tuple(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def url_event(
    action: str,
    url_name: str,
    *,
    methods: str | Iterable[str] = ("GET",),
    community: str | None = None,
    target: tuple[str, str] | None = None,
    search_param: str | None = None,
    context: ContextHook | None = None,
    category: str | Iterable[str] = "web",
    type: str | Iterable[str] = "access",
    description: str = "",
) -> EventType:
    """Record ``action`` when a request resolves to ``url_name``.

    ``community`` names the URL kwarg holding the community slug; ``target`` is
    ``(target type, URL kwarg holding its id)``; ``search_param`` is a query parameter
    whose value becomes ``eventtrail.search.query``; ``context`` runs on the worker.
    """
    return registry.add(
        EventType(
            action=action,
            key="url",
            url_name=url_name,
            methods=tuple(m.upper() for m in _tuple(methods)),
            community_kwarg=community,
            target_type=target[0] if target else None,
            target_kwarg=target[1] if target else None,
            search_param=search_param,
            context=context,
            category=_tuple(category),
            type=_tuple(type),
            description=description,
        )
    )


def signal_event(
    action: str,
    signal: Signal,
    handler: SignalHook,
    *,
    sender: Any = None,
    category: str | Iterable[str] = "web",
    type: str | Iterable[str] = "info",
    description: str = "",
) -> EventType:
    """Record ``action`` when ``signal`` fires; ``handler(**kwargs)`` gives its fields."""
    return registry.add(
        EventType(
            action=action,
            key="signal",
            signal=signal,
            sender=sender,
            handler=handler,
            category=_tuple(category),
            type=_tuple(type),
            description=description,
        )
    )


def model_event(
    action: str,
    model: str,
    *,
    fields: ModelHook,
    condition: Callable[[Any], bool] | None = None,
    category: str | Iterable[str] = "web",
    type: str | Iterable[str] = "creation",
    description: str = "",
) -> EventType:
    """Record ``action`` when an instance of ``model`` ("app_label.Model") is created."""
    return registry.add(
        EventType(
            action=action,
            key="model",
            model=model,
            fields=fields,
            condition=condition,
            category=_tuple(category),
            type=_tuple(type),
            description=description,
        )
    )


def state_event(
    action: str,
    model: str,
    field_name: str,
    *,
    fields: ModelHook,
    category: str | Iterable[str] = "web",
    type: str | Iterable[str] = "change",
    description: str = "",
) -> EventType:
    """Record ``action`` whenever ``model.field_name`` changes, in a request or not.

    The event carries the new value as ``eventtrail.target.state`` and the old one as
    ``eventtrail.target.previous_state``. One save gives one event, wherever it happens.
    """
    return registry.add(
        EventType(
            action=action,
            key="state",
            model=model,
            field_name=field_name,
            fields=fields,
            category=_tuple(category),
            type=_tuple(type),
            description=description,
        )
    )


def browser_event(
    action: str,
    fields: Mapping[str, type] | None = None,
    *,
    category: str | Iterable[str] = "web",
    type: str | Iterable[str] = "info",
    description: str = "",
) -> EventType:
    """Accept ``action`` from the browser collector, with only the listed payload fields."""
    allowed = dict(fields or {})
    for name, pytype in allowed.items():
        spec = schema.BY_NAME.get(name)
        if spec is None or spec.producer is not schema.Producer.CAPTURE:
            raise RegistryError(f"browser event {action!r}: {name!r} is not a capture field")
        if BROWSER_FIELD_TYPES.get(spec.type) is not pytype:
            raise RegistryError(f"browser event {action!r}: {name!r} is a {spec.type}")
    return registry.add(
        EventType(
            action=action,
            key="browser",
            browser_fields=allowed,
            category=_tuple(category),
            type=_tuple(type),
            description=description,
        )
    )
