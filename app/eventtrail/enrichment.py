"""The embedded store's enrichment: what the Logstash pipeline adds, done in Python alike."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ua_parser import parse

# The same expression sits in the Logstash pipeline; a test keeps the two equal.
BOT_PATTERN = r"(?i)(bot|crawler|spider|slurp)"
_BOT = re.compile(BOT_PATTERN)


def _version(*parts: str | None) -> str | None:
    present = [p for p in parts if p]
    return ".".join(present) or None


@lru_cache(maxsize=4096)
def user_agent_fields(original: str) -> tuple[tuple[str, Any], ...]:
    """ECS ``user_agent.*`` fields parsed from the header, as the useragent filter writes them."""
    result = parse(original)
    fields: dict[str, Any] = {}
    if result.user_agent is not None:
        ua = result.user_agent
        fields["user_agent.name"] = ua.family
        version = _version(ua.major, ua.minor, ua.patch)
        if version:
            fields["user_agent.version"] = version
    if result.os is not None:
        os_ = result.os
        fields["user_agent.os.name"] = os_.family
        version = _version(os_.major, os_.minor, os_.patch)
        if version:
            fields["user_agent.os.version"] = version
        fields["user_agent.os.full"] = f"{os_.family} {version}" if version else os_.family
    fields["user_agent.device.name"] = result.device.family if result.device else "Other"
    bot = fields["user_agent.device.name"] == "Spider" or _BOT.search(original) is not None
    fields["eventtrail.bot"] = bot
    return tuple(fields.items())


def enrich(event: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Add user agent parts, the bot flag and ``event.ingested`` to a flat event."""
    original = event.get("user_agent.original")
    if original:
        event.update(user_agent_fields(original))
        if event["eventtrail.bot"]:
            event["tags"] = sorted(set(event.get("tags") or []) | {"bot"})
    else:
        event.setdefault("eventtrail.bot", False)
    stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["event.ingested"] = stamp
    return event
