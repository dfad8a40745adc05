"""Test helpers for host projects: capture the events a block of code produces."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventtrail import delivery, schema
from eventtrail.build import prepare
from eventtrail.draft import Draft


class CapturedEvents(list[dict[str, Any]]):
    """The captured documents (nested, exactly as delivered), with small query helpers."""

    def actions(self) -> list[str]:
        return [e["event"]["action"] for e in self]

    def flat(self) -> list[dict[str, Any]]:
        return [schema.flatten(e) for e in self]

    def of(self, action: str) -> list[dict[str, Any]]:
        return [schema.flatten(e) for e in self if e["event"]["action"] == action]


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Within the block, events are built synchronously and collected instead of delivered.

    Model and state events are recorded on transaction commit; inside a test transaction
    use a transactional test or ``django_capture_on_commit_callbacks(execute=True)``.
    """
    events = CapturedEvents()

    def collect(draft: Draft) -> None:
        prepared = prepare(draft)
        if prepared is not None:
            events.append(json.loads(prepared[1]))

    with delivery.redirected(collect):
        yield events
