"""Capture: read what must be read on the request thread, hand off, and build the event later."""
from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.utils.functional import empty

from eventtrail import privacy, schema
from eventtrail.conf import get_config
from eventtrail.ids import uuid7
from eventtrail.privacy import (
    client_ip,
    scrub_path,
    scrub_query,
    scrub_url,
    session_hash,
)
from eventtrail.registry import EventType, registry
from eventtrail.stats import counters

logger = logging.getLogger("eventtrail.capture")

# A draft is what capture hands off: plain values read from the request, keyed by schema field
# name, plus private keys starting with "_" that building consumes and never emits.
Draft = dict[str, Any]

PAGE_VIEW = "page.view"
MAX_TEXT = 2048  # longer header values are cut: a 64 KB header must not become a 64 KB event

# The draft of the request being served, so signal events made inside it share its context.
current_draft: ContextVar[Draft | None] = ContextVar("eventtrail_draft", default=None)
# True inside ``suppressed()``: bulk jobs (seeding, imports) record nothing.
_suppressed: ContextVar[bool] = ContextVar("eventtrail_suppressed", default=False)


@contextmanager
def suppressed() -> Iterator[None]:
    """Record no event for what happens inside the block (in this thread or task)."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


@contextmanager
def internal(where: str) -> Iterator[None]:
    """Log and count an internal error instead of letting it reach the host."""
    try:
        yield
    except Exception:
        counters.incr("internal_error")
        logger.exception("Event Trail internal error in %s", where)


# --- cheap exits -----------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _compiled(include: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[re.Pattern, re.Pattern]:
    never = r"(?!)"
    return (
        re.compile("|".join(f"(?:{p})" for p in include) or never),
        re.compile("|".join(f"(?:{p})" for p in exclude) or never),
    )


def path_recorded(path: str) -> bool:
    config = get_config()
    include, exclude = _compiled(tuple(config["INCLUDE_PATHS"]), tuple(config["EXCLUDE_PATHS"]))
    return include.match(path) is not None and exclude.match(path) is None


def tracking_refused(meta: Mapping[str, Any]) -> bool:
    """True when the client asked not to be tracked and the settings honour it."""
    config = get_config()
    return (config["HONOR_DNT"] and meta.get("HTTP_DNT") == "1") or (
        config["HONOR_GPC"] and meta.get("HTTP_SEC_GPC") == "1"
    )


def sampled(action: str) -> bool:
    rate = get_config()["SAMPLING"].get(action)
    return rate is None or random.random() < rate


# --- reading the request ----------------------------------------------------------------------


def _user_of(request: Any) -> tuple[Any, Any]:
    """(user object or None, user id or None) without loading anything the view did not load."""
    user = request.__dict__.get("_cached_user")
    if user is None:
        lazy = request.__dict__.get("user")
        wrapped = getattr(lazy, "_wrapped", None) if lazy is not None else None
        if wrapped is not None and wrapped is not empty:
            user = wrapped
    if user is not None:
        return (user, user.pk) if getattr(user, "is_authenticated", False) else (None, None)
    session = request.__dict__.get("session")
    cache = getattr(session, "_session_cache", None) if session is not None else None
    if cache is not None:
        return None, cache.get(SESSION_KEY)
    return None, None


def begin(request: Any) -> Draft | None:
    """The request-thread part of capture; None when this request is not recorded."""
    config = get_config()
    if not config["ENABLED"] or not path_recorded(request.path_info) or _suppressed.get():
        return None
    meta = request.META
    if tracking_refused(meta):
        return {"_refused": True}
    return {
        "_ts": time.time_ns(),
        "_start": time.perf_counter_ns(),
        "_remote": meta.get("REMOTE_ADDR"),
        "_xff": meta.get("HTTP_X_FORWARDED_FOR"),
        "_query": meta.get("QUERY_STRING", ""),
        "url.path": request.path_info,
        "http.request.method": request.method,
        "http.request.referrer": meta.get("HTTP_REFERER"),
        "http.request.id": meta.get(config["REQUEST_ID_HEADER"]),
        "user_agent.original": meta.get("HTTP_USER_AGENT"),
    }


def _identity(draft: Draft, request: Any) -> None:
    """Add who made the request, read as cheaply as the request allows."""
    user, user_id = _user_of(request)
    session = request.__dict__.get("session")
    session_key = getattr(session, "session_key", None) if session is not None else None
    draft["_user"] = user
    draft["_user_id"] = user_id
    draft["_session_key"] = session_key


def classify(request: Any) -> EventType | None:
    """The registered type of this request: by URL name and method, else page.view for a GET."""
    match = getattr(request, "resolver_match", None)
    event_type = registry.by_url_name.get(match.url_name) if match is not None else None
    if event_type is not None:
        return event_type if request.method in event_type.methods else None
    if request.method == "GET" and get_config()["PAGE_VIEW"]:
        return registry.by_action.get(PAGE_VIEW)
    return None


def finish(draft: Draft, request: Any, status: int) -> None:
    """After the response: classify, then hand off. Never raises."""
    if draft.get("_refused"):
        return  # the client asked not to be tracked: its signal events were skipped too
    with internal("finish"):
        event_type = classify(request)
        if event_type is None or not sampled(event_type.action):
            return
        draft.pop("_request", None)  # the request object itself is never queued
        draft["_duration"] = time.perf_counter_ns() - draft.pop("_start")
        draft["_type"] = event_type
        draft["http.response.status_code"] = status
        match = request.resolver_match
        draft["_kwargs"] = match.kwargs if match is not None else {}
        if event_type.search_param:
            draft["eventtrail.search.query"] = request.GET.get(event_type.search_param)
        draft["eventtrail.source"] = "server"
        _identity(draft, request)
        emit(draft)


def signal_draft(event_type: EventType, fields: Mapping[str, Any], user: Any = None) -> Draft | None:
    """A draft for a signal or model event, sharing the current request's context if any."""
    if not get_config()["ENABLED"] or _suppressed.get():
        return None
    request_draft = current_draft.get()
    if request_draft is not None and request_draft.get("_refused"):
        return None
    draft: Draft = {"_ts": time.time_ns(), "_type": event_type, "eventtrail.source": "signal"}
    if request_draft is not None:
        for key in (
            "_remote", "_xff", "_query", "url.path", "http.request.method",
            "http.request.referrer", "http.request.id", "user_agent.original",
        ):
            draft[key] = request_draft.get(key)
        request = request_draft.get("_request")
        if request is not None:
            _identity(draft, request)
    if user is not None and getattr(user, "is_authenticated", False):
        draft["_user"], draft["_user_id"] = user, user.pk
    draft.update(fields)
    return draft


# --- building, on the delivery worker ----------------------------------------------------------

_TTL = 60.0
_user_cache: dict[Any, tuple[float, Any]] = {}
_context_cache: dict[Any, tuple[float, Mapping[str, Any]]] = {}


def clear_caches() -> None:
    """Forget cached users, roles and URL context (tests; a renamed user shows within the TTL)."""
    _user_cache.clear()
    _context_cache.clear()
    privacy.clear_caches()


def _cached(cache: dict[Any, tuple[float, Any]], key: Any, load: Any) -> Any:
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and now - hit[0] < _TTL:
        return hit[1]
    value = load()
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (now, value)
    return value


def _load_user(user_id: Any) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model()._default_manager.filter(pk=user_id).first()


def _user_id_from_session(session_key: str) -> Any:
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return store.get(SESSION_KEY)


def user_roles(user: Any) -> list[str]:
    from django.utils.module_loading import import_string

    roles = []
    if getattr(user, "is_superuser", False):
        roles.append("superuser")
    if getattr(user, "is_staff", False):
        roles.append("staff")
    hook = get_config()["USER_ROLES"]
    if hook:
        roles.extend(r for r in import_string(hook)(user) if r not in roles)
    return roles


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _cut(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) and len(value) > MAX_TEXT else value


def outcome(status: int | None) -> str:
    if status is None:
        return "unknown"
    return "failure" if status >= 400 else "success"


def build(draft: Draft) -> dict[str, Any]:
    """Turn a draft into a flat event (dotted keys); processors run on it next."""
    config = get_config()
    event_type: EventType = draft["_type"]
    ts = draft["_ts"]
    status = draft.get("http.response.status_code")
    event: dict[str, Any] = {
        "@timestamp": _iso(ts),
        "ecs.version": schema.ECS_VERSION,
        "event.id": draft.get("event.id") or uuid7(ms=ts // 1_000_000),
        "event.kind": "event",
        "event.category": list(event_type.category),
        "event.type": list(event_type.type),
        "event.action": event_type.action,
        "event.outcome": draft.get("event.outcome") or outcome(status),
        "event.dataset": schema.EVENT_DATASET,
        "service.name": config["SERVICE_NAME"],
        "service.environment": config["ENVIRONMENT"],
        "eventtrail.schema_version": schema.SCHEMA_VERSION,
    }
    if "_duration" in draft:
        event["event.duration"] = draft["_duration"]
    for key, value in draft.items():
        if not key.startswith("_") and value is not None and key not in event:
            event[key] = _cut(value)
    if draft.get("_query"):
        event["url.query"] = _cut(scrub_query(draft["_query"]))
    if event.get("url.path"):
        event["url.path"] = scrub_path(event["url.path"], draft.get("_kwargs") or {})
    if event.get("http.request.referrer"):
        event["http.request.referrer"] = _cut(scrub_url(event["http.request.referrer"]))
    ip = client_ip(draft.get("_remote"), draft.get("_xff"))
    if ip:
        event["source.ip"] = ip
    if not event.get("http.request.id") and "url.path" in event:
        event["http.request.id"] = event["event.id"]

    user, user_id = draft.get("_user"), draft.get("_user_id")
    session_key = draft.get("_session_key")
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

    kwargs = draft.get("_kwargs") or {}
    # A browser event carries the URL type of its page, so it resolves community and target alike.
    keyed: EventType = draft.get("_url_type") or event_type
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
    event.setdefault("message", _message(event))
    return event


def _message(event: Mapping[str, Any]) -> str:
    who = event.get("user.name") or "anonymous"
    what = event["event.action"]
    where = event.get("url.path") or event.get("eventtrail.target.id") or ""
    return f"{who} {what} {where}".strip()


# --- hand-off ------------------------------------------------------------------------------------


def emit(draft: Draft) -> None:
    """Hand a draft to delivery (or to an active ``capture_events()``). Never blocks."""
    from eventtrail.delivery import handoff

    handoff().put(draft)


def draft_for(
    action: str,
    fields: Mapping[str, Any],
    *,
    at_ns: int | None = None,
    remote: str | None = None,
    query: str = "",
    duration_ns: int | None = None,
) -> Draft:
    """A draft made outside a request (activity history, tests): the same builder follows."""
    draft: Draft = {
        "_ts": at_ns if at_ns is not None else time.time_ns(),
        "_type": registry.by_action[action],
        "_remote": remote,
        "_query": query,
        "eventtrail.source": "server",
    }
    if duration_ns is not None:
        draft["_duration"] = duration_ns
    draft.update(fields)
    return draft
