"""End to end: the site under gunicorn with Event Trail on and off, as users meet it.

    /work/main/.venv/bin/python bench/e2e.py [--quick]

gunicorn (sync workers, 2 of them, its defaults otherwise) serves the demo site from a seeded
database; with Event Trail on, the real middleware, its spool and the HTTP sink send to a local
receiver process. A client process keeps ``--clients`` connections busy (one request each, as
sync workers close them) for ``--seconds`` per run; runs alternate on and off for ``--rounds``
rounds, so drift on the machine hits both alike. Two pages: a trivial view and the demo's
community page. Reported per page and mode: requests/s, p50 and p99 latency, and the server's
CPU per request (every gunicorn process and thread, from /proc).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PAGES = {"trivial view": "/bench/minimal/", "community page": "/c/urban-gardening/"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, under a minute")
    parser.add_argument("--rounds", type=int, help="on/off pairs per page")
    parser.add_argument("--seconds", type=float, help="measured seconds per run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    args = parser.parse_args(argv)
    for name, quick, full in (("rounds", 1, 3), ("seconds", 2.0, 8.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (gunicorn's master and workers, all threads)."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid or int(stat.parent.name) == pid:  # ppid or itself
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


class Server:
    def __init__(self, env: dict[str, str], on: bool) -> None:
        self.port = free_port()
        environ = {**env, "BENCH_EVENTTRAIL": "on" if on else "off"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
             "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "config.wsgi:application"],
            cwd=REPO / "app", env=environ, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get(self.port, "/bench/minimal/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("gunicorn did not start")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)


def get(port: int, path: str) -> tuple[int, float]:
    """One GET on a new connection, as a browser to a sync worker; (status, seconds)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0\r\n"
                     "\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data[9:12]), time.perf_counter() - t0


def load(port: int, path: str, clients: int, seconds: float) -> list[float]:
    """``clients`` threads requesting ``path`` for ``seconds``; every latency, in seconds."""
    latencies: list[float] = []
    failures: list[int] = []
    end = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < end:
            status, took = get(port, path)
            (latencies if status == 200 else failures).append(took if status == 200 else status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"{path}: {len(failures)} requests failed ({sorted(set(failures))})")
    return latencies


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    var_dir = _common.setup("e2e")
    receiver = _common.ReceiverProcess("http")
    try:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("migrate", database="events", verbosity=0)
        call_command("seed_demo", verbosity=0)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings",
               "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'app'}",
               "EVENTTRAIL_VAR_DIR": str(var_dir), "EVENTTRAIL_SINK": "logstash-http",
               "LOGSTASH_HOSTS": f"http://127.0.0.1:{receiver.port}"}
        print("# End-to-end benchmark under gunicorn (" + ("quick" if args.quick else "full")
              + " run)")
        print(_common.machine())
        print(f"gunicorn, 2 sync workers; {args.clients} client connections from another process; "
              f"{args.rounds} rounds of on/off runs of {args.seconds:g} s per page, alternating.")
        rows = []
        for page, path in PAGES.items():
            results: dict[bool, dict[str, Any]] = {
                on: {"lat": [], "seconds": 0.0, "cpu": 0.0, "served": 0} for on in (False, True)}
            sent_before = receiver.counts()[1]
            for round_no in range(args.rounds):
                for on in ((False, True) if round_no % 2 == 0 else (True, False)):
                    server = Server(env, on)
                    try:
                        warm = load(server.port, path, args.clients, min(1.0, args.seconds / 4))
                        cpu0, t0 = group_cpu(server.proc.pid), time.monotonic()
                        lat = load(server.port, path, args.clients, args.seconds)
                        results[on]["seconds"] += time.monotonic() - t0
                        results[on]["cpu"] += group_cpu(server.proc.pid) - cpu0
                        results[on]["lat"].extend(lat)
                        # and the one request that found the server up
                        results[on]["served"] += len(warm) + len(lat) + 1
                    finally:
                        server.stop()  # on: stopping flushes what is spooled
            deadline = time.monotonic() + 60
            while receiver.counts()[1] - sent_before < results[True]["served"] \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
            sent = receiver.counts()[1] - sent_before
            if sent != results[True]["served"]:
                raise SystemExit(f"{page}: the receiver got {sent:,} events for "
                                 f"{results[True]['served']:,} requests with Event Trail on")
            for on in (False, True):
                r = results[on]
                n = len(r["lat"])
                rows.append([page, "on" if on else "off", n, n / r["seconds"],
                             _common.median(r["lat"]) * 1000,
                             _common.percentile(r["lat"], 99) * 1000, r["cpu"] / n * 1e6])
            off, on_row = rows[-2], rows[-1]
            rows.append([page, "on / off", "-", f"{on_row[3] / off[3]:.2f}x",
                         f"{on_row[4] / off[4]:.2f}x", f"{on_row[5] / off[5]:.2f}x",
                         f"{on_row[6] - off[6]:+.0f} µs"])
            print(f"\n{page}: the receiver got {sent:,} events for {results[True]['served']:,} "
                  "requests with Event Trail on (warm-ups and start-up probes included), none from the off "
                  "runs.")
        print(_common.table(
            "On and off, interleaved (the headline: the on / off rows)",
            ["page", "Event Trail", "requests", "requests/s", "p50 ms", "p99 ms",
             "server CPU µs/request"], rows))
    finally:
        receiver.stop()
        _common.cleanup(var_dir)


if __name__ == "__main__":
    main()
