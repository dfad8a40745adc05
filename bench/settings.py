"""Benchmark-only settings: the demo's, plus django-easy-audit installed as a reference."""
import os
import tempfile

# Never the repo's var/: a benchmark run that forgot to set a var dir gets a fresh temp one.
if not os.environ.get("EVENTTRAIL_VAR_DIR"):
    os.environ["EVENTTRAIL_VAR_DIR"] = tempfile.mkdtemp(prefix="eventtrail-bench-")

from config.settings import *  # noqa: E402, F403
from config.settings import INSTALLED_APPS, LOGGING, MIDDLEWARE  # noqa: E402

DEBUG = False  # DEBUG keeps every SQL query in memory; production does not
INSTALLED_APPS = [*INSTALLED_APPS, "easyaudit"]
ROOT_URLCONF = "bench.urls"

EVENTTRAIL_MIDDLEWARE = "eventtrail.middleware.EventTrailMiddleware"
EASYAUDIT_MIDDLEWARE = "easyaudit.middleware.easyaudit.EasyAuditMiddleware"
# The variants the capture benchmark builds one WSGI handler for each.
MIDDLEWARE_WITHOUT = [m for m in MIDDLEWARE if m != EVENTTRAIL_MIDDLEWARE]
MIDDLEWARE_EVENTTRAIL = [*MIDDLEWARE_WITHOUT, EVENTTRAIL_MIDDLEWARE]
MIDDLEWARE_EASYAUDIT = [*MIDDLEWARE_WITHOUT, EASYAUDIT_MIDDLEWARE]
MIDDLEWARE = MIDDLEWARE_WITHOUT
if "BENCH_EVENTTRAIL" in os.environ:
    # bench/e2e.py serves the site with gunicorn, Event Trail on or off, and no easy-audit
    # (installed, it logs every request from a signal, whatever the middleware).
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "easyaudit"]
    if os.environ["BENCH_EVENTTRAIL"] == "on":
        MIDDLEWARE = MIDDLEWARE_EVENTTRAIL

# Only warnings: a log line per request or per retry would be measured too.
LOGGING = {**LOGGING, "root": {**LOGGING["root"], "level": "WARNING"}}
