"""Empty databases to run the store's migrations on."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test.utils import override_settings

from tests.support import pg_fixture


@contextmanager
def empty_database(kind: str) -> Iterator[str]:
    """A new, empty events database under the alias it yields ("sqlite" or "postgresql", a
    cluster of its own), the store's alias while it lasts: for running migrations on."""
    alias = "migrated"
    base = dict(connections.settings["events"])
    root = Path(tempfile.mkdtemp())
    running = None
    if kind == "postgresql":
        running = pg_fixture.cluster()
        try:
            server = next(running)
        except pg_fixture.PostgresError as exc:
            pytest.fail(f"PostgreSQL could not start: {exc}", pytrace=False)
        base.update(server.django())
    else:
        base.update({"ENGINE": "django.db.backends.sqlite3", "NAME": str(root / "m.sqlite3"),
                     "OPTIONS": {}})
    connections.settings[alias] = base
    try:
        with override_settings(EVENTTRAIL={**settings.EVENTTRAIL, "DATABASE_ALIAS": alias}):
            yield alias
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]
        if running is not None:
            with suppress(StopIteration):
                next(running)
        shutil.rmtree(root, ignore_errors=True)
