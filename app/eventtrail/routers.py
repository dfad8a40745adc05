"""Database router that keeps Event Trail's tables on their own alias."""
from typing import Any

EVENTS_ALIAS = "events"


class EventTrailRouter:
    """Send the eventtrail app's models to the ``events`` alias, and nothing else there."""

    app_label = "eventtrail"

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return EVENTS_ALIAS if model._meta.app_label == self.app_label else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return EVENTS_ALIAS if model._meta.app_label == self.app_label else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label == self.app_label:
            return db == EVENTS_ALIAS
        if db == EVENTS_ALIAS:
            return False
        return None
