"""Sinks: where the worker sends batches. Logstash transports come from python-logstash-async."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from eventtrail.conf import get_config
from eventtrail.delivery.forksafe import native


class DeliveryError(Exception):
    """A batch was not (fully) delivered. ``delivered`` leading documents did arrive;
    ``too_large``: every host refused the batch for its size (HTTP 413), so a smaller one may
    go through."""

    def __init__(self, message: str, delivered: int = 0, too_large: bool = False) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.too_large = too_large


class Sink(Protocol):
    """Takes serialised documents; returns when all are acknowledged, raises otherwise."""

    name: str

    def send(self, docs: Sequence[str]) -> None: ...
    def close(self) -> None: ...


def _hosts(urls: Sequence[str], default_scheme: str, default_port: int) -> list[tuple[str, str, int]]:
    hosts = []
    for url in urls:
        parts = urlsplit(url if "://" in url else f"{default_scheme}://{url}")
        hosts.append((parts.scheme, parts.hostname or "127.0.0.1", parts.port or default_port))
    return hosts


class FailoverSink:
    """A base for sinks with several hosts: ``order()`` lists the index of every host, the one
    that worked last first. A subclass fills ``transports`` (one per host) and ``labels`` (how
    errors name each), tries them in ``order()`` in its ``send``, sets ``current`` to the one
    that took the batch, and raises ``DeliveryError`` naming every host's failure."""

    transports: list[Any]
    labels: list[str]

    def __init__(self) -> None:
        self.current = 0

    def order(self) -> list[int]:
        n = len(self.transports)
        return [(self.current + i) % n for i in range(n)]


class LogstashTcpSink(FailoverSink):
    """Newline-delimited JSON over TCP (``json_lines``). Only the kernel acknowledges it.

    Documents go in chunks, one ``sendall`` each, so a broken connection loses at most the
    chunk in flight and the chunks before it count as delivered.
    """

    name = "logstash-tcp"
    CHUNK = 100

    def __init__(self, hosts: Sequence[str] | None = None) -> None:
        super().__init__()
        config = get_config()
        TcpTransport = _no_wait_tcp_transport()
        self.transports, self.labels = [], []
        for scheme, host, port in _hosts(hosts or config["LOGSTASH_HOSTS"], "tcp", 5000):
            tls = scheme in {"tls", "ssl", "tcps"}
            self.transports.append(
                TcpTransport(host, port, timeout=config["SEND_TIMEOUT"], ssl_enable=tls,
                             ssl_verify=bool(config["LOGSTASH_SSL_VERIFY"]),
                             ssl_verify_flags=None, keyfile=config["LOGSTASH_SSL_KEY"],
                             certfile=config["LOGSTASH_SSL_CERT"],
                             ca_certs=config["LOGSTASH_SSL_CA"])
            )
            self.labels.append(f"{scheme}://{host}:{port}")

    def send(self, docs: Sequence[str]) -> None:
        chunks = [
            "".join(f"{doc}\n" for doc in docs[i : i + self.CHUNK])
            for i in range(0, len(docs), self.CHUNK)
        ]
        delivered, errors = 0, []
        for index in self.order():
            transport = self.transports[index]
            try:
                for chunk_no in range(delivered // self.CHUNK, len(chunks)):
                    transport.send([chunks[chunk_no]])
                    delivered = min(len(docs), (chunk_no + 1) * self.CHUNK)
                self.current = index
                return
            except OSError as exc:
                errors.append(f"{self.labels[index]}: {exc}")
        raise DeliveryError("; ".join(errors), delivered)

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


class LogstashHttpSink(FailoverSink):
    """JSON batches over HTTP with basic auth. Logstash answers 200 only once it has them."""

    name = "logstash-http"

    def __init__(self, hosts: Sequence[str] | None = None) -> None:
        super().__init__()
        transport_class = _json_array_transport()
        config = get_config()
        self.transports, self.labels = [], []
        for scheme, host, port in _hosts(hosts or config["LOGSTASH_HOSTS"], "http", 8080):
            self.transports.append(
                transport_class(
                    host, port, timeout=config["SEND_TIMEOUT"], ssl_enable=scheme == "https",
                    ssl_verify=config["LOGSTASH_SSL_VERIFY"],
                    username=config["LOGSTASH_USER"] or None,
                    password=config["LOGSTASH_PASSWORD"] or None,
                )
            )
            self.labels.append(f"{scheme}://{host}:{port}")

    def send(self, docs: Sequence[str]) -> None:
        import requests

        errors, refused = [], 0
        for index in self.order():
            try:
                self.transports[index].send(docs)
                self.current = index
                return
            except (requests.RequestException, OSError) as exc:
                errors.append(f"{self.labels[index]}: {_describe(exc)}")
                response = getattr(exc, "response", None)
                refused += response is not None and response.status_code == 413
        raise DeliveryError("; ".join(errors), too_large=refused == len(self.transports))

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


@cache
def _no_wait_tcp_transport() -> Any:
    """python-logstash-async's TcpTransport, minus its wait for the write buffer to drain.

    It waits up to SOCKET_CLOSE_WAIT_TIMEOUT (30 s) per connection, polling every 50 ms: about
    950 events/s. We count a chunk as sent once ``sendall`` returns and let a retry cover the
    rest, so we never wait. Overriding the wait here, rather than setting the library's
    process-wide constant, leaves any handler the host uses itself untouched.
    """
    from logstash_async.transport import TcpTransport

    class NoWaitTcpTransport(TcpTransport):  # type: ignore[misc]  # untyped library
        def _wait_for_socket_buffer_empty(self) -> None:
            return None

    return NoWaitTcpTransport


@cache
def _json_array_transport() -> type:
    """python-logstash-async's HttpTransport, posting our documents as they are.

    Its own ``send`` parses every document and re-serialises the growing batch once per
    document to measure it: quadratic, about 800 events/s at 500 per batch. Ours are already
    JSON, so the body is just their join; and one session is kept, so connections are reused.
    A batch (BATCH_SIZE documents of a few KB at most) is far below Logstash's 100 MB
    ``max_content_length``, so it is never split.
    """
    import requests
    from logstash_async.transport import HttpTransport
    from requests.auth import HTTPBasicAuth

    class JsonArrayHttpTransport(HttpTransport):  # type: ignore[misc]  # untyped library
        session: requests.Session | None = None

        def send(self, events: Sequence[str], **kwargs: Any) -> None:
            body = ("[" + ",".join(events) + "]").encode("utf-8")
            auth = None
            if self._username is not None and self._password is not None:
                auth = HTTPBasicAuth(self._username, self._password)
            if self.session is None:
                self.session = requests.Session()
            try:
                response = self.session.post(
                    self.url, data=body, headers={"Content-Type": "application/json"},
                    verify=self._ssl_verify, timeout=self._timeout, auth=auth,
                )
                if response.status_code != 200:
                    response.raise_for_status()
            except Exception:
                self.close()  # never reuse a connection left in an unknown state
                raise

        def close(self) -> None:
            if self.session is not None:
                self.session.close()
                self.session = None

    return JsonArrayHttpTransport


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code}"
    return exc.__class__.__name__ + (f": {exc}" if str(exc) else "")


class JsonLinesSink:
    """Appends one JSON document per line to a file, fsynced per batch."""

    name = "jsonl"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or get_config()["JSONL_PATH"])
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, docs: Sequence[str]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("".join(f"{doc}\n" for doc in docs))
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        return None


class DatabaseSink:
    """The embedded store: enrich like the pipeline does, then insert, idempotent on event.id."""

    name = "database"

    def __init__(self, alias: str | None = None) -> None:
        self.alias = alias or get_config()["DATABASE_ALIAS"]

    def send(self, docs: Sequence[str]) -> None:
        from django.db import DatabaseError, close_old_connections, connections, transaction

        from eventtrail import schema
        from eventtrail.enrichment import enrich
        from eventtrail.models import StoredEvent
        from eventtrail.stores.database import (
            add_to_rollups,
            ensure_rollups,
            lock_rollups,
        )

        rows: dict[str, StoredEvent] = {}
        for doc in docs:
            nested = json.loads(doc)
            flat = enrich(schema.flatten(nested))
            row = StoredEvent.from_flat(flat, schema.unflatten(flat))
            rows.setdefault(row.id, row)  # a batch re-sent within itself counts once
        with self._fork_guard():
            try:
                ensure_rollups(self.alias)  # built once; a cheap look after that
                with transaction.atomic(using=self.alias):
                    # Locked before the check below, so the rows found new are the ones this
                    # transaction inserts, and a rebuild waits for it.
                    state = lock_rollups(self.alias)
                    events = StoredEvent.objects.using(self.alias)
                    ids = list(rows)
                    stored: set[str] = set()
                    for i in range(0, len(ids), 500):
                        stored.update(events.filter(id__in=ids[i:i + 500])
                                      .values_list("id", flat=True))
                    fresh = [row for key, row in rows.items() if key not in stored]
                    events.bulk_create(fresh, ignore_conflicts=True, batch_size=500)
                    if state.checked_to is not None:  # else the next build counts them
                        add_to_rollups(self.alias, fresh)
            except DatabaseError as exc:
                # A broken connection must not poison every later attempt.
                connections[self.alias].close()
                raise DeliveryError(f"database {self.alias!r}: {exc}") from exc
            finally:
                close_old_connections()

    def close(self) -> None:
        from django.db import connections

        with self._fork_guard():
            connections[self.alias].close()

    def _fork_guard(self) -> AbstractContextManager[None]:
        """SQLite inside forksafe.native: a fork mid-call would leave its process-wide mutexes
        locked in the child. Not PostgreSQL: libpq holds no such lock during a query, and a
        query hung on a lost network must not hold up every fork (a gunicorn master's)."""
        from django.db import connections

        return native if connections[self.alias].vendor == "sqlite" else nullcontext()
