"""The Event Trail middleware: last in the stack, it records each request as one event."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from eventtrail import delivery
from eventtrail.capture import begin, finish, internal
from eventtrail.draft import Draft, current_draft


def _start(request: HttpRequest) -> Draft | None:
    draft = None
    with internal("begin"):
        draft = begin(request)
    return draft


class EventTrailMiddleware:
    """Records the request after the view ran. Never raises into it and never blocks it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        # The app is loading in a process that will serve requests: start delivery now, so
        # spools that dead workers left are adopted and sent without waiting for a request.
        with internal("start"):
            delivery.start()

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        draft = _start(request)
        if draft is None:
            return self.get_response(request)
        token = current_draft.set(draft)
        status = 500  # what the client gets when the view raises past us
        try:
            response: HttpResponseBase = self.get_response(request)
            status = response.status_code
            return response
        finally:
            current_draft.reset(token)
            finish(draft, request, status)

    async def __acall__(self, request: HttpRequest) -> Any:
        draft = _start(request)
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if draft is None:
            return await get_response(request)
        token = current_draft.set(draft)
        status = 500
        try:
            response = await get_response(request)
            status = response.status_code
            return response
        finally:
            current_draft.reset(token)
            finish(draft, request, status)
