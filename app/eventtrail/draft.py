"""The draft: what capture reads on the request thread and hands to the delivery worker.

A draft holds plain values only. The worker turns it into an event later (``eventtrail.build``),
so the request pays for reading, never for building. Capture, signals and the browser collector
make drafts through this one class.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth import SESSION_KEY
from django.utils.functional import empty

if TYPE_CHECKING:
    from eventtrail.registry import EventType

# Schema fields a signal event made during a request shares with that request's event.
REQUEST_CONTEXT = (
    "url.path", "http.request.method", "http.request.referrer", "http.request.id",
    "user_agent.original",
)


@dataclass(slots=True, eq=False)
class Draft:
    """One event before it is built. ``fields`` holds schema fields by dotted name; the other
    attributes are inputs the builder consumes and never emits."""

    ts: int  # wall-clock nanoseconds
    source: str  # "server", "signal" or "browser"
    type: EventType | None = None  # None until a request is classified
    fields: dict[str, Any] = field(default_factory=dict)
    remote: str | None = None  # REMOTE_ADDR
    xff: str | None = None  # X-Forwarded-For, believed only from trusted proxies
    query: str = ""  # raw query string, scrubbed when built
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # URL kwargs: community, target, scrubbed path
    url_type: EventType | None = None  # a browser event's page type, for community and target
    duration: int | None = None  # nanoseconds the view took
    start: int = 0  # perf_counter_ns at the request's start (request thread only)
    user: Any = None
    user_id: Any = None
    session_key: str | None = None
    refused: bool = False  # the client asked not to be tracked (DNT, GPC)
    request: Any = None  # request thread only: never queued

    def act_as(self, user: Any) -> None:
        """Name the acting user (a signal's ``user``, or ``_user`` among a hook's fields)."""
        if user is not None and getattr(user, "is_authenticated", False):
            self.user, self.user_id = user, user.pk

    def identify(self, request: Any) -> None:
        """Add who made the request, read as cheaply as the request allows: nothing the view
        did not load is loaded here; the worker resolves a bare session key or user id."""
        user, user_id = _user_of(request)
        session = request.__dict__.get("session")
        self.user, self.user_id = user, user_id
        self.session_key = getattr(session, "session_key", None) if session is not None else None

    def inherit(self, request_draft: Draft) -> None:
        """Share the context of the request being served (a signal event made inside it)."""
        self.remote, self.xff, self.query = (
            request_draft.remote, request_draft.xff, request_draft.query
        )
        for key in REQUEST_CONTEXT:
            value = request_draft.fields.get(key)
            if value is not None:
                self.fields.setdefault(key, value)
        if request_draft.request is not None:
            self.identify(request_draft.request)


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


# The draft of the request being served, so signal events made inside it share its context.
current_draft: ContextVar[Draft | None] = ContextVar("eventtrail_draft", default=None)
# True inside ``suppressed()``: bulk jobs (seeding, imports) record nothing.
_suppressed: ContextVar[bool] = ContextVar("eventtrail_suppressed", default=False)


def is_suppressed() -> bool:
    return _suppressed.get()


@contextmanager
def suppressed() -> Iterator[None]:
    """Record no event for what happens inside the block (in this thread or task)."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)
