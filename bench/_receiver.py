"""A Logstash stand-in run as its own process, so its parsing does not share our GIL.

``python bench/_receiver.py tcp|http`` listens on 127.0.0.1, prints its port, then answers
``count`` on stdin with ``<distinct event ids> <documents> <bad lines>`` and exits on ``quit``.
It keeps only the ids, so a million events cost tens of MB, not gigabytes.
"""
from __future__ import annotations

import json
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ids: set[str] = set()
stats = {"docs": 0, "bad": 0}
lock = threading.Lock()


def event_id(doc: Any) -> str | None:
    """Ours carry ``event.id``; python-logstash-async's formatter wraps extras under ``extra``."""
    if not isinstance(doc, dict):
        return None
    for node in (doc, doc.get("extra")):
        event = node.get("event") if isinstance(node, dict) else None
        if isinstance(event, dict) and isinstance(event.get("id"), str):
            return event["id"]
    return None


def record(docs: list[Any]) -> None:
    found = [event_id(doc) for doc in docs]
    with lock:
        stats["docs"] += len(docs)
        for value in found:
            if value is None:
                stats["bad"] += 1
            else:
                ids.add(value)


class TcpHandler(socketserver.StreamRequestHandler):
    """json_lines, like Logstash's tcp input."""

    def handle(self) -> None:
        for line in self.rfile:
            line = line.strip()
            if not line:
                continue
            try:
                record([json.loads(line)])
            except ValueError:
                with lock:
                    stats["bad"] += 1


class HttpHandler(BaseHTTPRequestHandler):
    """Like Logstash's http input: a JSON array or object; 200 once it has them."""

    def log_message(self, *args: object) -> None:
        return None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            data = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        record(data if isinstance(data, list) else [data])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class TcpServer(socketserver.ThreadingTCPServer):
    # socketserver's default backlog of 5 makes a burst of connects wait for SYN retries (1 s);
    # Logstash's inputs listen with a large backlog.
    request_queue_size = 1024
    allow_reuse_address = True
    daemon_threads = True


class HttpServer(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


def main(kind: str) -> None:
    server: socketserver.TCPServer
    if kind == "tcp":
        server = TcpServer(("127.0.0.1", 0), TcpHandler)
    elif kind == "http":
        server = HttpServer(("127.0.0.1", 0), HttpHandler)
    else:
        raise SystemExit(f"unknown receiver kind {kind!r}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    for command in sys.stdin:
        if command.strip() == "count":
            with lock:
                print(len(ids), stats["docs"], stats["bad"], flush=True)
        elif command.strip() == "quit":
            break
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main(sys.argv[1])
