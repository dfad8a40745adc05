#!/usr/bin/env python3
"""`make e2e`: start the whole stack in Docker, click through the demo site, prove the events arrive.

What it proves, in order:
  1. setup ran to completion and the site, Elasticsearch and Kibana answer;
  2. a logged-in visitor's page views reach Elasticsearch through Logstash, enriched (parsed
     user agent, event.ingested, bot flag) and still carrying their own url.path and
     user_agent.original, with event.id as the document id;
  3. the site's API serves them back (GET /api/events/?event.action=article.view);
  4. straight into Logstash's HTTP input: a delivery request's own User-Agent never replaces the
     event's; a resent event is stored once; geo and bot enrichment; invalid bodies land in the
     dead-letter data stream;
  5. Kibana has the data view and the dashboards (the only place their import is verified).
The stack runs under its own project name and ports, with fresh random passwords (in
var/e2e/), and is torn down with its volumes at the end; E2E_KEEP=1 leaves it running.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
PROJECT = os.environ.get("E2E_PROJECT", "eventtrail-e2e")
PORTS = {
    "WEB_PORT": os.environ.get("E2E_WEB_PORT", "18000"),
    "KIBANA_PORT": os.environ.get("E2E_KIBANA_PORT", "15601"),
    "ELASTICSEARCH_PORT": os.environ.get("E2E_ELASTICSEARCH_PORT", "19200"),
    "LOGSTASH_HTTP_PORT": os.environ.get("E2E_LOGSTASH_HTTP_PORT", "18080"),
}
SITE = f"http://127.0.0.1:{PORTS['WEB_PORT']}"
ES = f"http://127.0.0.1:{PORTS['ELASTICSEARCH_PORT']}"
KIBANA = f"http://127.0.0.1:{PORTS['KIBANA_PORT']}"
LOGSTASH = f"http://127.0.0.1:{PORTS['LOGSTASH_HTTP_PORT']}"
EVENTS = "logs-eventtrail-*"
DEADLETTERS = "logs-eventtrail.deadletter-*"
RUN = secrets.token_hex(4)
# A browser's user agent, made unique to this run so the run finds exactly its own events.
BROWSER_UA = f"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 EventTrailE2E/{RUN}"
DELIVERY_UA = f"e2e-delivery-worker/{RUN}"
USERNAME = "e2e"
MAX_PAGES = 30
SKIP_PREFIXES = ("/admin/", "/api/", "/static/", "/accounts/logout", "/eventtrail/")

T = TypeVar("T")


def log(message: str) -> None:
    print(f"[e2e] {message}", flush=True)


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    sys.exit("e2e needs Docker with the compose plugin (or docker-compose)")


def load_make_env() -> Any:
    spec = importlib.util.spec_from_file_location("make_env", ROOT / "scripts/make_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 3) -> T:
    """Calls ``probe`` until it returns something other than None (exceptions count as None)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (requests.RequestException, AssertionError, KeyError) as exc:
            last, result = exc, None
        if result is not None:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}" + (f": {last}" if last else ""))


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


class Stack:
    def __init__(self, env_file: Path, values: dict[str, str]) -> None:
        self.compose = [*compose_command(), "-p", PROJECT, "--env-file", str(env_file),
                        "-f", str(ROOT / "docker-compose.yml")]
        self.values = values
        self.elastic = ("elastic", values["ELASTIC_PASSWORD"])
        self.logstash = (values["LOGSTASH_HTTP_USER"], values["LOGSTASH_HTTP_PASSWORD"])

    def run(self, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run([*self.compose, *args], cwd=ROOT, check=check, **kwargs)

    def exit_code(self, service: str) -> int | None:
        ids = self.run("ps", "-a", "-q", service, capture_output=True, text=True).stdout.split()
        if not ids:
            return None
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                                ids[0]], capture_output=True, text=True, check=True).stdout.split()
        return int(state[1]) if state[0] == "exited" else None

    def search(self, index: str, query: dict[str, Any], size: int = 100) -> list[dict[str, Any]]:
        response = requests.post(f"{ES}/{index}/_search", auth=self.elastic, timeout=30,
                                 json={"query": query, "size": size})
        response.raise_for_status()
        return response.json()["hits"]["hits"]

    def deliver(self, body: str | list[dict[str, Any]], content_type: str = "application/json") -> None:
        data = body if isinstance(body, str) else json.dumps(body)
        response = requests.post(LOGSTASH, data=data.encode(), auth=self.logstash, timeout=30,
                                 headers={"Content-Type": content_type, "User-Agent": DELIVERY_UA})
        assert response.status_code == 200, (response.status_code, response.text)


def new_event(action: str = "page.view", **fields: Any) -> dict[str, Any]:
    """A valid event, shaped as capture builds them."""
    event_id = str(uuid.uuid4())
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    doc: dict[str, Any] = {
        "@timestamp": now.replace("+00:00", "Z"),
        "ecs": {"version": "9.0.0"},
        "event": {"id": event_id, "kind": "event", "action": action, "category": ["web"],
                  "type": ["access"], "outcome": "success", "dataset": "eventtrail.events"},
        "url": {"path": f"/e2e/probe/{event_id}"},
        "user_agent": {"original": f"EventTrailProbe/1.0 (the event's own agent; run {RUN})"},
        "service": {"name": "e2e", "environment": "e2e"},
        "eventtrail": {"schema_version": "1", "source": "server"},
    }
    for dotted, value in fields.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return doc


def start(stack: Stack) -> None:
    log("building and starting the stack")
    stack.run("up", "-d", "--build")
    wait_for("setup to finish", lambda: stack.exit_code("setup"), 900)
    assert stack.exit_code("setup") == 0, "setup failed"
    wait_for("the site", lambda: requests.get(f"{SITE}/admin/login/", timeout=5).ok or None, 600)
    log("setup done and the site is up")


def log_in(stack: Stack) -> requests.Session:
    password = secrets.token_urlsafe(16)
    stack.run("exec", "-T", "-e", f"DJANGO_SUPERUSER_PASSWORD={password}", "web", "python",
              "manage.py", "createsuperuser", "--noinput", "--username", USERNAME,
              "--email", "e2e@example.com")
    session = requests.Session()
    session.headers["User-Agent"] = BROWSER_UA
    session.get(f"{SITE}/accounts/login/", timeout=30).raise_for_status()
    response = session.post(
        f"{SITE}/accounts/login/", timeout=30, headers={"Referer": f"{SITE}/accounts/login/"},
        data={"username": USERNAME, "password": password, "next": "/",
              "csrfmiddlewaretoken": session.cookies["csrftoken"]},
    )
    response.raise_for_status()
    assert "sessionid" in session.cookies, "login failed"
    log("logged in as a new superuser")
    return session


def browse(session: requests.Session) -> list[str]:
    """Follows the site's own links breadth-first, as a visitor would; returns the paths seen."""
    queue, seen = ["/"], {"/"}
    visited: list[str] = []
    while queue and len(visited) < MAX_PAGES:
        path = queue.pop(0)
        response = session.get(f"{SITE}{path}", timeout=30)
        if response.status_code != 200 or "text/html" not in response.headers.get("Content-Type", ""):
            continue
        visited.append(path)
        parser = Links()
        parser.feed(response.text)
        for href in parser.hrefs:
            url = urlsplit(urljoin(f"{SITE}{path}", href))
            if url.netloc != urlsplit(SITE).netloc or url.path.startswith(SKIP_PREFIXES):
                continue
            if url.path not in seen:
                seen.add(url.path)
                queue.append(url.path)
    assert visited, "the home page did not load"
    log(f"visited {len(visited)} pages")
    return visited


def check_site_events(stack: Stack, visited: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(visited)

    def arrived() -> list[dict[str, Any]] | None:
        hits = stack.search(EVENTS, {"term": {"user_agent.original": BROWSER_UA}}, size=500)
        paths = {h["_source"].get("url", {}).get("path") for h in hits}
        return hits if wanted <= paths else None

    hits = wait_for("the visits to reach Elasticsearch", arrived, 240)
    for hit in hits:
        doc = hit["_source"]
        assert hit["_id"] == doc["event"]["id"], "event.id is not the document id"
        assert doc["user_agent"]["original"] == BROWSER_UA
        assert doc["user_agent"]["name"] == "Firefox", doc["user_agent"]
        assert doc["event"]["ingested"] and doc["@timestamp"]
        assert doc["eventtrail"]["bot"] is False
        assert doc["data_stream"] == {"type": "logs", "dataset": "eventtrail",
                                      "namespace": stack.values["EVENTTRAIL_NAMESPACE"]}
        assert "_eventtrail_invalid" not in doc.get("tags", [])
        assert not {"@version", "headers", "host"} & set(doc), sorted(doc)
    log(f"{len(hits)} events from the visit arrived, enriched, with their own path and agent")
    return hits


def check_api(session: requests.Session, hits: list[dict[str, Any]]) -> None:
    views = [h["_source"]["event"]["id"] for h in hits
             if h["_source"]["event"]["action"] == "article.view"]
    paths = sorted({h["_source"]["url"]["path"] for h in hits})
    assert views, f"no article.view among the visit's events; pages seen: {paths}"
    response = session.get(f"{SITE}/api/events/", params={"event.action": "article.view"},
                           timeout=30, headers={"Accept": "application/json"})
    assert response.status_code == 200, (response.status_code, response.text[:500])
    assert any(event_id in response.text for event_id in views), response.text[:500]
    log("the API serves the article views back")


def check_logstash_directly(stack: Stack) -> None:
    def stored(event_id: str) -> list[dict[str, Any]] | None:
        hits = stack.search(EVENTS, {"term": {"event.id": event_id}})
        return hits or None

    # The delivery request's own User-Agent and path must not replace the event's.
    probe = new_event(**{"source.ip": "8.8.8.8"})
    event_id = probe["event"]["id"]
    stack.deliver([probe])
    # The same event again, twice in one batch: still one document.
    stack.deliver([probe, probe])
    doc = wait_for("the probe event", lambda: stored(event_id), 120)[0]["_source"]
    assert doc["url"]["path"] == probe["url"]["path"]
    assert doc["user_agent"]["original"] == probe["user_agent"]["original"]
    assert "country_iso_code" in doc["source"]["geo"], doc["source"]
    time.sleep(5)
    assert len(stored(event_id) or []) == 1, "a resent event was stored twice"
    log("the HTTP input keeps the event's own agent and path; a resent event is stored once")

    bot = new_event(**{"user_agent.original": "Mozilla/5.0 (compatible; Googlebot/2.1)"})
    stack.deliver([bot])
    doc = wait_for("the bot event", lambda: stored(bot["event"]["id"]), 120)[0]["_source"]
    assert doc["eventtrail"]["bot"] is True and "bot" in doc["tags"]
    log("bots are flagged and tagged, not dropped")

    garbage = f"not json, run {RUN} {{"
    missing_id = new_event()
    del missing_id["event"]["id"]
    missing_id["url"]["path"] = f"/e2e/missing-id/{RUN}"
    stack.deliver(garbage, content_type="text/plain")
    stack.deliver([missing_id])

    def dead_letters() -> list[dict[str, Any]] | None:
        hits = stack.search(DEADLETTERS, {"bool": {"should": [
            {"match_phrase": {"message": garbage}},
            {"term": {"url.path": missing_id["url"]["path"]}},
        ]}})
        return hits if len(hits) == 2 else None

    for hit in wait_for("the dead letters", dead_letters, 120):
        assert "_eventtrail_invalid" in hit["_source"]["tags"]
        assert hit["_source"]["data_stream"]["dataset"] == "eventtrail.deadletter"
    log("invalid bodies are dead-lettered, not lost")


def check_kibana(stack: Stack) -> None:
    wait_for("the dashboards import", lambda: stack.exit_code("setup-kibana"), 600)
    assert stack.exit_code("setup-kibana") == 0, "setup-kibana failed"
    admin = ("kibana_admin", stack.values["KIBANA_ADMIN_PASSWORD"])
    view = requests.get(f"{KIBANA}/api/data_views/data_view/eventtrail-events", auth=admin, timeout=30)
    assert view.status_code == 200, (view.status_code, view.text[:500])
    found = requests.get(f"{KIBANA}/api/saved_objects/_find", auth=admin, timeout=30,
                         params={"type": "dashboard", "per_page": "100"})
    found.raise_for_status()
    assert found.json()["total"] >= 4, found.text[:500]
    log("Kibana has the data view and the dashboards, readable by kibana_admin")


def main() -> int:
    make_env = load_make_env()
    example = (ROOT / ".env.example").read_text()
    overrides = {
        **PORTS,
        "KIBANA_PUBLIC_URL": f"http://127.0.0.1:{PORTS['KIBANA_PORT']}",
        "DJANGO_CSRF_TRUSTED_ORIGINS": SITE,
    }
    env_dir = ROOT / "var" / "e2e"
    env_dir.mkdir(parents=True, exist_ok=True)
    env_file = env_dir / f"{PROJECT}.env"
    env_file.write_text(make_env.render_generated(example, overrides))
    env_file.chmod(0o600)
    stack = Stack(env_file, make_env.parse(env_file.read_text()))
    ok = False
    try:
        start(stack)
        session = log_in(stack)
        hits = check_site_events(stack, browse(session))
        check_api(session, hits)
        check_logstash_directly(stack)
        check_kibana(stack)
        ok = True
        log("all end-to-end checks passed")
    finally:
        if not ok:
            stack.run("ps", "-a", check=False)
            stack.run("logs", "--no-color", "--tail", "150", check=False)
        if os.environ.get("E2E_KEEP") == "1":
            log(f"kept the stack; remove it with: {' '.join(stack.compose)} down -v")
        else:
            stack.run("down", "-v", "--remove-orphans", check=False)
            env_file.unlink()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
