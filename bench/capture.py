"""Capture benchmark: what EventTrailMiddleware adds per request, next to django-easy-audit.

    /work/main/.venv/bin/python bench/capture.py [--quick]

Three WSGI handlers are built from the demo site's MIDDLEWARE (bench/settings.py):
  (a) without EventTrailMiddleware;
  (b) with it, events handed to the real ``Handoff`` (its builder and sender threads build,
      spool and send them with the real HTTP sink to a local receiver process);
  (c) without it but with django-easy-audit's request logging (a RequestEvent row per request).
Requests are WSGI environ dicts passed straight to the handlers, in rounds that interleave the
variants, so drift on a shared machine hits all three alike. Signed-in requests cycle through
``--sessions`` users, each with a session of their own, so per-user caches miss as they would on
a site. The headline is the added CPU per request, every thread of the process included (the
request, the builder, the sender); median and p99 latency are given too.
"""
from __future__ import annotations

import argparse
import gc
import io
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402

PATH = "/bench/minimal/"
EASYAUDIT_UID = "easy_audit_signals_request_started"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--rounds", type=int, help="rounds; each runs every variant once")
    parser.add_argument("--requests", type=int, help="requests per variant per round")
    parser.add_argument("--warmup", type=int, help="unmeasured requests per variant first")
    parser.add_argument("--sessions", type=int, default=None,
                        help="distinct signed-in users (one session each) the requests cycle "
                             "through (default 200; 20 with --quick)")
    parser.add_argument("--spool", choices=["sqlite", "memory"], default="sqlite",
                        help="the hand-off's spool: SQLite on disk (the default outside tests) "
                             "or in memory")
    args = parser.parse_args(argv)
    for name, quick, full in (("rounds", 4, 10), ("requests", 100, 1000), ("warmup", 50, 300),
                              ("sessions", 20, 200)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def wsgi_handler(middleware: list[str]) -> Any:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    previous = settings.MIDDLEWARE
    settings.MIDDLEWARE = middleware
    try:
        return WSGIHandler()  # the middleware chain is built here, once
    finally:
        settings.MIDDLEWARE = previous


def base_environ(cookie: str | None) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": PATH,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.7",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "HTTP_ACCEPT": "text/html,application/xhtml+xml",
        "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.8",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    return environ


def one_request(app: Any, base: dict[str, Any], cookie: str | None = None) -> int:
    """Serve one request as a WSGI server would; returns the time it took in ns."""
    environ = dict(base)
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    environ["wsgi.input"] = io.BytesIO(b"")
    statuses: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    t0 = time.perf_counter_ns()
    result = app(environ, start_response)
    try:
        b"".join(result)
    finally:
        result.close()  # request_finished fires here, as under gunicorn
    took = time.perf_counter_ns() - t0
    if statuses[0][:3] != "200":
        raise SystemExit(f"{PATH} answered {statuses[0]}")
    return took


def easyaudit_logging(on: bool) -> None:
    """Its request logging hangs off request_started for every handler: on only for (c)."""
    from django.core.signals import request_started
    from easyaudit.signals.request_signals import request_started_handler

    if on:
        request_started.connect(request_started_handler, dispatch_uid=EASYAUDIT_UID)
    else:
        request_started.disconnect(dispatch_uid=EASYAUDIT_UID)


def logged_in_cookies(count: int) -> list[str]:
    """``count`` users, each signed in with a session of their own: their cookies."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    cookies = []
    for n in range(count):
        user = get_user_model()(username=f"bench-user-{n}")
        user.set_unusable_password()  # no password hashing: setup stays quick
        user.save()
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


class Variant:
    def __init__(self, key: str, label: str, app: Any, before: Callable[[], None],
                 after: Callable[[], float]) -> None:
        self.key, self.label, self.app = key, label, app
        self.before, self.after = before, after
        self.samples: list[float] = []
        self.cpu_ns = 0
        self.requests = 0


def measure(variants: list[Variant], base: dict[str, Any], rounds: int, requests: int,
            warmup: int, cookies: Sequence[str | None]) -> None:
    """Each request takes the next cookie in turn (one ``None``: anonymous)."""
    for variant in variants:
        variant.before()
        for n in range(warmup):
            one_request(variant.app, base, cookies[n % len(cookies)])
        variant.after()
    for round_no in range(rounds):
        shift = round_no % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            variant.before()
            gc.collect()
            cpu0 = time.process_time_ns()
            for n in range(requests):
                variant.samples.append(
                    one_request(variant.app, base, cookies[n % len(cookies)]) / 1000)
            variant.after()  # (b): wait for the worker to finish this batch's events
            variant.cpu_ns += time.process_time_ns() - cpu0
            variant.requests += requests


def report(title: str, variants: list[Variant]) -> tuple[str, dict[str, float]]:
    base = variants[0]
    base_median = _common.median(base.samples)
    base_cpu = base.cpu_ns / base.requests / 1000
    rows = []
    for v in variants:
        med = _common.median(v.samples)
        cpu = v.cpu_ns / v.requests / 1000
        rows.append([
            v.label, v.requests, med, _common.percentile(v.samples, 95),
            _common.percentile(v.samples, 99),
            "-" if v is base else f"{med - base_median:+.1f}",
            "-" if v is base else f"{med / base_median:.2f}x",
            cpu, "-" if v is base else f"{cpu - base_cpu:+.1f}",
        ])
    text = _common.table(
        title,
        ["variant", "requests", "median µs", "p95 µs", "p99 µs", "added µs (median)", "ratio",
         "CPU µs/req incl. worker", "added CPU µs"],
        rows,
    )
    ours = variants[1]
    added = {
        "cpu": ours.cpu_ns / ours.requests / 1000 - base_cpu,
        "median": _common.median(ours.samples) - base_median,
        "p99": _common.percentile(ours.samples, 99) - _common.percentile(base.samples, 99),
    }
    return text, added


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    var_dir = _common.setup("capture")
    try:
        run(args, var_dir)
    finally:
        from eventtrail import delivery

        delivery.shutdown(5)
        _common.cleanup(var_dir)


def run(args: argparse.Namespace, var_dir: Path) -> None:
    from django.conf import settings
    from django.core.management import call_command
    from easyaudit.models import RequestEvent
    from eventtrail import delivery
    from eventtrail.conf import get_config
    from eventtrail.delivery import Handoff
    from eventtrail.delivery.sinks import LogstashHttpSink
    from eventtrail.delivery.spool import MemorySpool, SqliteSpool

    started = time.monotonic()
    call_command("migrate", database="default", interactive=False, verbosity=0)
    cookies = logged_in_cookies(args.sessions)
    config = get_config()
    receiver = _common.ReceiverProcess("http")  # Logstash's part: another process
    sink = LogstashHttpSink([f"http://127.0.0.1:{receiver.port}"])
    spool = (
        SqliteSpool(var_dir / "spool", config["SPOOL_MAX_EVENTS"], config["SPOOL_MAX_AGE"])
        if args.spool == "sqlite" else MemorySpool(config["SPOOL_MAX_EVENTS"])
    )
    handoff = Handoff(sink=sink, spool=spool)
    delivery._handoff = handoff  # what emit() hands to: the real hand-off and sink

    def drain() -> float:
        t0 = time.monotonic()
        if not handoff.flush(30):
            raise SystemExit("the delivery worker did not catch up within 30 s")
        return time.monotonic() - t0

    def nothing() -> float:
        return 0.0

    def easyaudit_off() -> float:
        easyaudit_logging(False)
        return 0.0

    variants = [
        Variant("a", "(a) demo MIDDLEWARE without EventTrail",
                wsgi_handler(settings.MIDDLEWARE_WITHOUT), lambda: None, nothing),
        Variant("b", "(b) + EventTrailMiddleware, real Handoff",
                wsgi_handler(settings.MIDDLEWARE_EVENTTRAIL), lambda: None, drain),
        Variant("c", "(c) + django-easy-audit (reference)",
                wsgi_handler(settings.MIDDLEWARE_EASYAUDIT), lambda: easyaudit_logging(True),
                easyaudit_off),
    ]
    easyaudit_logging(False)
    setup_s = time.monotonic() - started

    print(f"# Capture benchmark ({'quick' if args.quick else 'full'} run)")
    print(_common.machine())
    print(f"GET {PATH} (a view returning 'ok' that does not touch request.user), WSGI handlers "
          f"called directly; {args.rounds} rounds x {args.requests} requests per variant, "
          f"variants interleaved, {args.warmup} warm-up requests each; signed-in requests cycle "
          f"through {args.sessions} users, a session each. Hand-off spool: {args.spool}; sink: "
          f"logstash-http to a local receiver process. Setup took {setup_s:.1f} s.")
    print(f"The worker wakes when {config['BATCH_SIZE']} events are queued (or every "
          f"{config['FLUSH_INTERVAL']} s), so with batches of more requests than that it builds "
          "while (b)'s later requests run and shares the GIL with them, as it would in production.")
    results = []
    for mode, mode_cookies in (("anonymous", [None]), ("logged in", cookies)):
        for v in variants:
            v.samples, v.cpu_ns, v.requests = [], 0, 0
        base = base_environ(None)
        before_sink, before_rows = receiver.counts()[1], RequestEvent.objects.count()
        measure(variants, base, args.rounds, args.requests, args.warmup, mode_cookies)
        text, added = report(f"{mode}: per request", variants)
        results.append((mode, added))
        print(text)
        per_variant = args.rounds * args.requests + args.warmup
        events = receiver.counts()[1] - before_sink
        rows = RequestEvent.objects.count() - before_rows
        users = set(RequestEvent.objects.order_by("-id")[:5].values_list("user_id", flat=True))
        print(f"\nChecks: the receiver got {events:,} events for {per_variant:,} (b) requests; "
              f"easy-audit wrote {rows:,} RequestEvent rows for {per_variant:,} (c) requests "
              f"(user_id of the last rows: {sorted(users, key=str)}).")
        if events != per_variant or rows != per_variant:
            raise SystemExit("a variant did not record every request")

    receiver.stop()
    print("\nCPU µs/req is the whole process's CPU time over each batch, including the delivery "
          "threads building, spooling and sending that batch's events over HTTP (the batch waits "
          "until the receiver has acknowledged them), divided by the requests: what a request "
          "costs a saturated core, not its latency. The receiver's CPU (Logstash's part) is "
          "another process and not counted.")
    worst = max(results, key=lambda r: r[1]["cpu"])
    print(_common.table(
        f"Event Trail's added cost per request (headline: the worst added CPU, "
        f"{worst[1]['cpu']:+.1f} µs, {worst[0]})",
        ["user", "added CPU µs (all threads)", "added median µs", "added p99 µs"],
        [[mode, f"{a['cpu']:+.1f}", f"{a['median']:+.1f}", f"{a['p99']:+.1f}"]
         for mode, a in results],
    ))


if __name__ == "__main__":
    main()
