"""Capture: read what must be read on the request thread, then hand off. Building comes later,
on the delivery worker (``eventtrail.build``)."""
from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from eventtrail.conf import get_config
from eventtrail.delivery import handoff
from eventtrail.draft import Draft, current_draft, is_suppressed
from eventtrail.registry import EventType, registry
from eventtrail.stats import counters

logger = logging.getLogger("eventtrail.capture")

PAGE_VIEW = "page.view"


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
def _compiled(include: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
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


def begin(request: Any) -> Draft | None:
    """The request-thread part of capture; None when this request is not recorded."""
    config = get_config()
    if not config["ENABLED"] or not path_recorded(request.path_info) or is_suppressed():
        return None
    meta = request.META
    if tracking_refused(meta):
        return Draft(ts=0, source="server", refused=True)
    return Draft(
        ts=time.time_ns(),
        source="server",
        start=time.perf_counter_ns(),
        remote=meta.get("REMOTE_ADDR"),
        xff=meta.get("HTTP_X_FORWARDED_FOR"),
        query=meta.get("QUERY_STRING", ""),
        request=request,
        fields={
            "url.path": request.path_info,
            "http.request.method": request.method,
            "http.request.referrer": meta.get("HTTP_REFERER"),
            "http.request.id": meta.get(config["REQUEST_ID_HEADER"]),
            "user_agent.original": meta.get("HTTP_USER_AGENT"),
        },
    )


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
    if draft.refused:
        return  # the client asked not to be tracked: its signal events were skipped too
    with internal("finish"):
        event_type = classify(request)
        if event_type is None or not sampled(event_type.action):
            return
        draft.request = None  # the request object itself is never queued
        draft.duration = time.perf_counter_ns() - draft.start
        draft.type = event_type
        fields = draft.fields
        fields["http.response.status_code"] = status
        match = request.resolver_match
        if match is not None and match.kwargs:
            draft.kwargs = match.kwargs
        if event_type.search_param:
            fields["eventtrail.search.query"] = request.GET.get(event_type.search_param)
        draft.identify(request)
        emit(draft)


def signal_draft(event_type: EventType, fields: Mapping[str, Any], user: Any = None) -> Draft | None:
    """A draft for a signal or model event, sharing the current request's context if any."""
    if not get_config()["ENABLED"] or is_suppressed():
        return None
    request_draft = current_draft.get()
    if request_draft is not None and request_draft.refused:
        return None
    own = dict(fields)
    hook_user = own.pop("_user", None)
    draft = Draft(ts=time.time_ns(), source="signal", type=event_type, fields=own)
    if request_draft is not None:
        draft.inherit(request_draft)
    draft.act_as(user)
    draft.act_as(hook_user)
    return draft


# --- hand-off ------------------------------------------------------------------------------------


def emit(draft: Draft) -> None:
    """Hand a draft to delivery (or to an active ``capture_events()``). Never blocks."""
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
    own = dict(fields)
    user = own.pop("_user", None)
    draft = Draft(
        ts=at_ns if at_ns is not None else time.time_ns(),
        source="server",
        type=registry.by_action[action],
        fields=own,
        remote=remote,
        query=query,
        duration=duration_ns,
    )
    draft.act_as(user)
    return draft
