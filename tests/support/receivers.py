"""Real local receivers standing in for Logstash's tcp (json_lines) and http inputs."""
from __future__ import annotations

import base64
import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Received:
    """What arrived, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.docs: list[dict] = []
        self.requests = 0
        self.bad_lines = 0
        self.batch_sizes: list[int] = []

    def add(self, docs: list[dict]) -> None:
        with self.lock:
            self.docs.extend(docs)
            self.batch_sizes.append(len(docs))

    def ids(self) -> list[str]:
        with self.lock:
            return [d["event"]["id"] for d in self.docs]

    def wait_for(self, count: int, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(set(self.ids())) >= count:
                return True
            time.sleep(0.05)
        return False


class TcpReceiver:
    """A json_lines TCP server, like Logstash's tcp input. ``start``/``stop`` model outages."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received = Received()
        self.server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> TcpReceiver:
        received = self.received

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        received.add([json.loads(line)])
                    except ValueError:
                        received.bad_lines += 1

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            request_queue_size = 128  # the default 5 makes bursts of connections wait 1 s

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class HttpReceiver:
    """An HTTP server like Logstash's http input: JSON array or object, basic auth, 200 = ack.

    ``script`` is a list of responses to give before answering 200: an int status, "slow" to
    hold the request past the client's timeout, or "half" to take the batch and close the
    connection halfway through the response. A batch of more than ``max_docs`` documents, or a
    body over ``max_bytes``, is answered 413 and not taken.
    """

    def __init__(self, user: str = "writer", password: str = "s3cret", port: int | None = None):
        self.port = port or free_port()
        self.user, self.password = user, password
        self.received = Received()
        self.script: list[int | str] = []
        self.slow_seconds = 3.0
        self.server: ThreadingHTTPServer | None = None
        self.auth_failures = 0
        self.max_docs: int | None = None
        self.max_bytes: int | None = None
        self.too_large = 0  # requests answered 413

    def start(self) -> HttpReceiver:
        outer = self
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.received.lock:
                    outer.received.requests += 1
                    step = outer.script.pop(0) if outer.script else 200
                if self.headers.get("Authorization") != expected:
                    outer.auth_failures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                if step == "slow":
                    time.sleep(outer.slow_seconds)
                    step = 200  # the client gave up already; it must re-send
                if step not in (200, "half"):
                    self.send_response(int(step))
                    self.end_headers()
                    return
                data = json.loads(body)
                data = data if isinstance(data, list) else [data]
                if (outer.max_docs is not None and len(data) > outer.max_docs) or (
                        outer.max_bytes is not None and len(body) > outer.max_bytes):
                    with outer.received.lock:
                        outer.too_large += 1
                    self.send_response(413)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.received.add(data)
                if step == "half":  # taken, then the connection drops mid-response
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Blackhole:
    """Accepts connections and never reads or answers: a hung receiver."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()
