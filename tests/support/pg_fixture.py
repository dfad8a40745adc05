"""A throwaway PostgreSQL cluster in a temporary directory, for the database store's contract."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path("/usr/lib/postgresql/15/bin")
# PostgreSQL refuses to run as root; CI runs as root, then the cluster runs as Debian's user.
SYSTEM_USER = "postgres"


class PostgresError(RuntimeError):
    """The cluster could not be created or started; the message carries the log tail."""


@dataclass
class Cluster:
    host: str
    port: int
    user: str
    name: str

    def django(self) -> dict[str, object]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": "",
            "HOST": self.host,
            "PORT": str(self.port),
            "OPTIONS": {},
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(cmd: list[str], user: str | None, log: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, user=user, timeout=120, check=False)
    if done.returncode != 0:
        tail = log.read_text()[-2000:] if log and log.exists() else ""
        raise PostgresError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr}{tail}")


def cluster() -> Iterator[Cluster]:
    """Start a cluster (ICU en-US default collation), yield it, remove it."""
    if not (BIN / "initdb").exists():
        raise PostgresError(f"no PostgreSQL binaries in {BIN}: install the Debian package")
    user = SYSTEM_USER if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="eventtrail-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, log, port = root / "data", root / "server.log", _free_port()
    try:
        _run(
            [
                str(BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "eventtrail",
                "--auth=trust",
                # A natural-language collation on purpose: the store must still sort keywords
                # by code point, as Elasticsearch does, whatever the database's collation.
                "--locale=C.UTF-8",
                "--locale-provider=icu",
                "--icu-locale=en-US",
                "--encoding=UTF8",
                "--no-sync",
            ],
            user,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            [
                str(BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            user,
            log,
        )
        try:
            yield Cluster("127.0.0.1", port, "eventtrail", "postgres")
        finally:
            subprocess.run(
                [str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                user=user,
                timeout=60,
                check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def events_alias(alias: str, documents: list[dict], blocker: Any) -> Iterator[str]:
    """A throwaway cluster under ``alias`` (settings of the ``events`` alias), with the embedded
    store's tables (events and rollups), holding ``documents`` written through the database
    sink. Fails the test, never
    skips, when PostgreSQL cannot start."""
    import pytest
    from django.db import connections
    from eventtrail.delivery.sinks import DatabaseSink
    from eventtrail.models import STORE_MODELS, StoredEvent

    try:
        running = cluster()
        server = next(running)
    except PostgresError as exc:
        pytest.fail(f"PostgreSQL could not start: {exc}", pytrace=False)
    base = dict(connections.settings["events"])
    base.update(server.django())
    base["TEST"] = {**base["TEST"], "NAME": server.name}
    connections.settings[alias] = base
    try:
        with blocker.unblock():
            with connections[alias].schema_editor() as editor:
                for model in STORE_MODELS:
                    editor.create_model(model)
            DatabaseSink(alias=alias).send([json.dumps(d) for d in documents])
            assert StoredEvent.objects.using(alias).count() == len(documents)
        yield alias
    finally:
        connections[alias].close()
        # Forget the connection and its settings: a later module's cluster (another port) under
        # the same alias must not reuse this one's cached connection.
        del connections[alias]
        del connections.settings[alias]
        with suppress(StopIteration):
            next(running)
