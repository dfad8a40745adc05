"""Processors: small callables run on each event by the delivery worker, in order."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventtrail import privacy
from eventtrail.conf import get_config, resolved

# An event while it is processed: a flat dict keyed by dotted schema names. Keys starting
# with "_" are private to the process (e.g. "_user") and are never serialised.
Event = dict[str, Any]
# A processor takes an event and returns it (changed or not), or None to drop it on purpose.
Processor = Callable[[Event], Event | None]


def opt_out(event: Event) -> Event | None:
    """Drop the events of users who opted out, per the OPT_OUT hook."""
    hook = resolved("OPT_OUT")
    user = event.get("_user")
    if hook is not None and user is not None and hook(user):
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


def run(event: Event) -> Event | None:
    """The PROCESSORS, in order; None as soon as one drops the event."""
    for processor in resolved("PROCESSORS"):
        result = processor(event)
        if result is None:
            return None
        event = result
    return event
