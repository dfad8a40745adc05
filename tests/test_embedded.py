"""Embedded mode as `make dev` runs it: a real server, the database sink and its enrichment."""
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.receivers import free_port

REPO = Path(__file__).resolve().parent.parent


def manage(env, *args, **kwargs):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO / "app", env=env,
                          check=True, capture_output=True, text=True, **kwargs)


def test_a_page_view_reaches_the_database_within_seconds_enriched(tmp_path):
    env = {**os.environ, "EVENTTRAIL_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("EVENTTRAIL_DATABASE_URL", None)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "migrate", "--database", "events", "--noinput", "-v0")
    manage(env, "seed_demo")
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}",
                               "--noreload"], cwd=REPO / "app", env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/communities/",
                    headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) "
                                           "Gecko/20100101 Firefox/133.0"})
                assert urllib.request.urlopen(request, timeout=5).status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "runserver did not come up"
                time.sleep(0.2)
        db = sqlite3.connect(tmp_path / "events.sqlite3")
        row = None
        deadline = time.monotonic() + 10
        while row is None and time.monotonic() < deadline:
            row = db.execute("select action, url_path, ua_name, os_name, is_bot, ingested "
                             "from eventtrail_storedevent where url_path = '/communities/'"
                             ).fetchone()
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(10)
    assert row is not None, "the page view never reached the embedded store"
    action, path, ua_name, os_name, is_bot, ingested = row
    assert (action, path, ua_name, os_name, is_bot) == ("page.view", "/communities/", "Firefox",
                                                        "Linux", 0)
    assert ingested
    # The spool was on (as outside tests) and is drained.
    left = [p for p in (tmp_path / "spool").glob("spool-*.sqlite")]
    assert all(sqlite3.connect(p).execute("select count(*) from events").fetchone()[0] == 0
               for p in left)
