"""Database router that keeps Event Trail's tables on their own alias."""
from typing import Any

from eventtrail.conf import get_config


def events_alias() -> str:
    alias: str = get_config()["DATABASE_ALIAS"]
    return alias


class EventTrailRouter:
    """Send the eventtrail app's models to EVENTTRAIL["DATABASE_ALIAS"], and nothing else there."""

    app_label = "eventtrail"

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return events_alias() if model._meta.app_label == self.app_label else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return events_alias() if model._meta.app_label == self.app_label else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label == self.app_label:
            return db == events_alias()
        if db == events_alias():
            return False
        return None
