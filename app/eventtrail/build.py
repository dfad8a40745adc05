"""Building, on the delivery worker: a draft becomes a flat event, then processed JSON.

Below both capture and delivery: capture makes drafts, delivery calls ``prepare`` on them, and
neither needs the other to do it. Everything here may touch the database (users, roles, URL
context), so it never runs on a request thread, except inside ``testing.capture_events``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from eventtrail import privacy, schema
from eventtrail.conf import get_config, resolved
from eventtrail.draft import Draft
from eventtrail.ids import uuid7
from eventtrail.privacy import client_ip, scrub_path, scrub_query, scrub_url, session_hash
from eventtrail.processors import run
from eventtrail.registry import EventType

MAX_TEXT = 2048  # longer header values are cut: a 64 KB header must not become a 64 KB event

# --- lookups, cached per worker ------------------------------------------------------------------

_TTL = 60.0
_MAX_CACHED = 10_000
_user_cache: dict[Any, tuple[float, Any]] = {}
_context_cache: dict[Any, tuple[float, Mapping[str, Any]]] = {}


def clear_caches() -> None:
    """Forget cached users, roles and URL context (tests; a renamed user shows within the TTL)."""
    _user_cache.clear()
    _context_cache.clear()
    privacy.clear_caches()


def _cached(cache: dict[Any, tuple[float, Any]], key: Any, load: Callable[[], Any]) -> Any:
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and now - hit[0] < _TTL:
        return hit[1]
    value = load()
    if len(cache) > _MAX_CACHED:
        cache.clear()
    cache[key] = (now, value)
    return value


def _load_user(user_id: Any) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model()._default_manager.filter(pk=user_id).first()


def _user_id_from_session(session_key: str) -> Any:
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return store.get(SESSION_KEY)


def user_roles(user: Any) -> list[str]:
    roles = []
    if getattr(user, "is_superuser", False):
        roles.append("superuser")
    if getattr(user, "is_staff", False):
        roles.append("staff")
    hook = resolved("USER_ROLES")
    if hook is not None:
        roles.extend(r for r in hook(user) if r not in roles)
    return roles


# --- the event -------------------------------------------------------------------------------------


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")  # the last second formatted, and its text


def _iso(ns: int) -> str:
    """RFC 3339 in UTC to the millisecond, exact (integer arithmetic). Events come in time
    order, so the date and time of day are formatted once per second, not once per event."""
    global _second
    seconds, rest = divmod(ns, 1_000_000_000)
    last = _second
    if last[0] != seconds:
        text = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()
        last = _second = (seconds, text)
    return f"{last[1]}.{rest // 1_000_000:03d}Z"


def _cut(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) and len(value) > MAX_TEXT else value


def outcome(status: int | None) -> str:
    if status is None:
        return "unknown"
    return "failure" if status >= 400 else "success"


def _base(draft: Draft, event_type: EventType) -> dict[str, Any]:
    config = get_config()
    fields = draft.fields
    event: dict[str, Any] = {
        "@timestamp": _iso(draft.ts),
        "ecs.version": schema.ECS_VERSION,
        "event.id": fields.get("event.id") or uuid7(ms=draft.ts // 1_000_000),
        "event.kind": "event",
        "event.category": list(event_type.category),
        "event.type": list(event_type.type),
        "event.action": event_type.action,
        "event.outcome": fields.get("event.outcome")
        or outcome(fields.get("http.response.status_code")),
        "event.dataset": schema.EVENT_DATASET,
        "service.name": config["SERVICE_NAME"],
        "service.environment": config["ENVIRONMENT"],
        "eventtrail.schema_version": schema.SCHEMA_VERSION,
        "eventtrail.source": fields.get("eventtrail.source") or draft.source,
    }
    if draft.duration is not None:
        event["event.duration"] = draft.duration
    for key, value in fields.items():
        if value is not None and key not in event:
            event[key] = _cut(value)
    return event


def _scrub(event: dict[str, Any], draft: Draft) -> None:
    if draft.query:
        event["url.query"] = _cut(scrub_query(draft.query))
    if event.get("url.path"):
        event["url.path"] = scrub_path(event["url.path"], draft.kwargs)
    if event.get("http.request.referrer"):
        event["http.request.referrer"] = _cut(scrub_url(event["http.request.referrer"]))
    ip = client_ip(draft.remote, draft.xff)
    if ip:
        event["source.ip"] = ip
    if not event.get("http.request.id") and "url.path" in event:
        event["http.request.id"] = event["event.id"]


def _who(event: dict[str, Any], draft: Draft) -> None:
    user, user_id, session_key = draft.user, draft.user_id, draft.session_key
    if user is None and user_id is None and session_key:
        user_id = _cached(_user_cache, ("session", session_key),
                          lambda: _user_id_from_session(session_key))
    if user is None and user_id is not None:
        user = _cached(_user_cache, ("user", user_id), lambda: _load_user(user_id))
    if user is not None:
        event["user.id"] = str(user.pk)
        event["user.name"] = user.get_username()
        # The USER_ROLES hook usually queries the database: once per user per TTL, not per event.
        event["user.roles"] = list(_cached(_user_cache, ("roles", user.pk),
                                           lambda: user_roles(user)))
        event["_user"] = user  # for the opt-out processor; dropped before serialising
    if session_key:
        event["eventtrail.session.hash"] = session_hash(session_key)


def _where(event: dict[str, Any], draft: Draft, event_type: EventType) -> None:
    kwargs = draft.kwargs
    # A browser event carries the URL type of its page, so it resolves community and target alike.
    keyed = draft.url_type or event_type
    if keyed.community_kwarg and keyed.community_kwarg in kwargs:
        event["eventtrail.community.slug"] = str(kwargs[keyed.community_kwarg])
    if keyed.target_kwarg and keyed.target_kwarg in kwargs:
        event["eventtrail.target.type"] = keyed.target_type
        event["eventtrail.target.id"] = str(kwargs[keyed.target_kwarg])
    if keyed.context is not None and kwargs:
        hook = keyed.context
        cache_key = (keyed.action, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
        for name, value in _cached(_context_cache, cache_key, lambda: dict(hook(kwargs))).items():
            if value is not None:
                event.setdefault(name, value)


def build(draft: Draft) -> dict[str, Any]:
    """Turn a draft into a flat event (dotted keys); processors run on it next."""
    event_type = draft.type
    if event_type is None:
        raise ValueError("a draft must be classified before it is built")
    event = _base(draft, event_type)
    _scrub(event, draft)
    _who(event, draft)
    _where(event, draft, event_type)
    event.setdefault("message", _message(event))
    return event


def _message(event: Mapping[str, Any]) -> str:
    who = event.get("user.name") or "anonymous"
    what = event["event.action"]
    where = event.get("url.path") or event.get("eventtrail.target.id") or ""
    return f"{who} {what} {where}".strip()


# orjson: a third of the stdlib encoder's cost, the worker's largest single step. Strict like
# the stdlib's: a datetime or dataclass among the fields raises (the event is dropped as
# "invalid", as before) rather than take a form nobody declared; so does a string that is not
# valid UTF-8 (a lone surrogate), which the stdlib let through to fail in the spool.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def serialise(event: dict[str, Any]) -> str:
    return orjson.dumps(schema.unflatten(event, public=True), option=_OPTIONS).decode()


def prepare(draft: Draft) -> tuple[str, str] | None:
    """Build, process and serialise one draft: (event.id, JSON), or None if dropped."""
    event = run(build(draft))
    if event is None:
        return None
    return event["event.id"], serialise(event)
