"""A file-backed SQLite database under an alias of its own, holding the embedded store's
tables: for tests whose processes share one file, or that must not touch the test database."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connections
from eventtrail.models import STORE_MODELS


@contextmanager
def sqlite_events(alias: str, path: Path, *, mode: str = "IMMEDIATE") -> Iterator[str]:
    """A file-backed SQLite alias with the store's tables: forked children write to the same
    file, where an in-memory test database would be each process's own. ``mode``: how its
    transactions begin (the demo's IMMEDIATE, or SQLite's default DEFERRED)."""
    base = dict(connections.settings["events"])
    base.update({"ENGINE": "django.db.backends.sqlite3", "NAME": str(path),
                 "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;",
                             "transaction_mode": mode, "timeout": 30},
                 "TEST": {"NAME": str(path)}})
    connections.settings[alias] = base
    try:
        with connections[alias].schema_editor() as editor:
            for model in STORE_MODELS:
                editor.create_model(model)
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]
