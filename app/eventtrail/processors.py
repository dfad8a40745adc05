"""Processors: small callables run on each event by the delivery worker, in order."""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from eventtrail import privacy
from eventtrail.conf import get_config

# An event while it is processed: a flat dict keyed by dotted schema names. Keys starting
# with "_" are private to the process (e.g. "_user") and are never serialised.
Event = dict[str, Any]
# A processor takes an event and returns it (changed or not), or None to drop it on purpose.
Processor = Callable[[Event], Event | None]


def opt_out(event: Event) -> Event | None:
    """Drop the events of users who opted out, per the OPT_OUT hook."""
    hook = get_config()["OPT_OUT"]
    user = event.get("_user")
    if hook and user is not None and import_string(hook)(user):
        return None
    return event


def anonymize_ip(event: Event) -> Event | None:
    if get_config()["ANONYMIZE_IP"] and event.get("source.ip"):
        event["source.ip"] = privacy.anonymize_ip(event["source.ip"])
    return event


def pseudonymize(event: Event) -> Event | None:
    """Replace user.id by a keyed hash the query side can recompute; drop user.name."""
    if get_config()["PSEUDONYMIZE_USERS"]:
        if event.get("user.id") is not None:
            event["user.id"] = privacy.pseudonym(event["user.id"])
        event.pop("user.name", None)
    return event


BUILTIN: dict[str, Processor] = {
    "opt_out": opt_out,
    "anonymize_ip": anonymize_ip,
    "pseudonymize": pseudonymize,
}


def resolve(setting: str, value: str, builtin: dict[str, Any]) -> Any:
    """A short alias or a dotted path; an import error names the setting that held it."""
    if value in builtin:
        return builtin[value]
    try:
        return import_string(value)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"EVENTTRAIL[{setting!r}]: cannot import {value!r} ({exc}); "
            f"built-in names are {sorted(builtin)}"
        ) from exc


@cache
def _resolved(paths: tuple[str, ...]) -> tuple[Processor, ...]:
    return tuple(resolve("PROCESSORS", p, BUILTIN) for p in paths)


def processors() -> tuple[Processor, ...]:
    return _resolved(tuple(get_config()["PROCESSORS"]))


def run(event: Event) -> Event | None:
    for processor in processors():
        result = processor(event)
        if result is None:
            return None
        event = result
    return event
