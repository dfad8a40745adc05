"""Send the hostile corpus to a real Logstash 9.5.2 running the shipped pipeline, and record what
happened in tests/data/real_logstash_run.json.

By hand only: the Logstash comes from ../shared/tools/real-logstash (assembled from fetched
sources, which CI cannot do). Usage, once it is built:

    BASE=/tmp/real-logstash .venv/bin/python scripts/real_logstash_run.py

The pipeline runs as shipped except for what a machine without Docker needs: listen ports, the
scripts' directory, and outputs that write plain indices on Elasticsearch 8.7.1 (its test build
has no data streams), with the schema's mappings. Every corpus event goes through the http input
one request each and through the tcp input as one line each; a batch mixes good and bad
elements. Then Logstash is restarted on its persisted queue. What is recorded: whether the
pipeline kept running, where each event ended against where `eventtrail_check --route` says it
ends, and whether Elasticsearch refused anything (Logstash's own dead letter queue).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "app")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from eventtrail import schema  # noqa: E402
from eventtrail.logstash import parse  # noqa: E402
from eventtrail.logstash.route import explain  # noqa: E402

from tests.support.hostile import CORPUS, VALID, inputs_digest  # noqa: E402

BASE = Path(os.environ.get("BASE", "/tmp/real-logstash"))
ES = "http://127.0.0.1:19200"
HTTP_PORT, TCP_PORT = 18080, 15000
USER, PASSWORD = "eventtrail", "hostile-run"
MAIN, DEAD = "eventtrail-main", "eventtrail-deadletter"
# PIPELINE and OUT let the same run be made of another pipeline (an older one, to see it fail).
PIPELINE = Path(os.environ.get("PIPELINE", ROOT / "logstash" / "pipeline" / "eventtrail.conf"))
OUT = Path(os.environ.get("OUT", ROOT / "tests" / "data" / "real_logstash_run.json"))
# Elasticsearch 8.7.1's integ-test build lacks x-pack and mapper-extras.
SWAPS = {"wildcard": "keyword", "match_only_text": "text", "constant_keyword": "keyword"}


def pipeline_text() -> str:
    text = PIPELINE.read_text()
    text = text.replace("/usr/share/logstash/scripts/", f"{ROOT}/logstash/scripts/")
    text = text.replace("port => 8080", f"port => {HTTP_PORT}").replace(
        "port => 5000", f"port => {TCP_PORT}").replace('host => "0.0.0.0"', 'host => "127.0.0.1"')
    output = text.index("\noutput {")
    return text[:output] + f"""
output {{
  if "_eventtrail_invalid" in [tags] {{
    elasticsearch {{ id => "eventtrail_deadletter" hosts => ["{ES}"] index => "{DEAD}"
                    manage_template => false }}
  }} else {{
    elasticsearch {{ id => "eventtrail_events" hosts => ["{ES}"] index => "{MAIN}"
                    manage_template => false action => "create"
                    document_id => "%{{[event][id]}}"
                    silence_errors_in_log => ["version_conflict_engine_exception"] }}
  }}
}}
"""


def swap(mapping: Any) -> Any:
    if isinstance(mapping, dict):
        out = {k: swap(v) for k, v in mapping.items()}
        if isinstance(out.get("type"), str) and out["type"] in SWAPS:
            swapped = SWAPS[out["type"]]
            if out["type"] == "wildcard":
                # A wildcard field indexes n-grams and takes values of any length; a keyword
                # without ignore_above refuses a term over 32 KB, which ES 9 would not.
                out["ignore_above"] = 1024
            out["type"] = swapped
            if swapped == "text":
                out.pop("ignore_above", None)
        return out
    return mapping


def es(method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(ES + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def post(body: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{HTTP_PORT}/", data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Basic "
                 + __import__("base64").b64encode(f"{USER}:{PASSWORD}".encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:
        return 0  # refused: Logstash is gone (an older pipeline stops on the corpus)


def start(command: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **env})


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for(test: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if test():
                return
        except (OSError, ValueError):
            pass
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {what}")


def logstash(work: Path, conf: Path, log: Path) -> subprocess.Popen[bytes]:
    script = (f". {BASE}/env.sh; cd {BASE}/ls; "
              f"[ -f {BASE}/preload-geoip.rb ] && export RUBYOPT=\"$RUBYOPT -r{BASE}/preload-geoip.rb\"; "
              f"exec bin/logstash -f {conf} --path.data {work}/data --path.settings {work}/settings")
    process = start(["bash", "-c", script], log, LOGSTASH_HTTP_USER=USER,
                    LOGSTASH_HTTP_PASSWORD=PASSWORD)
    wait_for(lambda: "Pipelines running" in log.read_text(errors="replace")
             or process.poll() is not None, 300, "Logstash")
    if process.poll() is not None:
        raise SystemExit(f"Logstash did not start: see {log}")
    return process


def main() -> None:
    work = Path("/tmp/eventtrail-real-logstash")
    shutil.rmtree(work, ignore_errors=True)
    (work / "settings").mkdir(parents=True)
    for name in ("log4j2.properties", "jvm.options"):
        source = BASE / "ls" / "config" / name
        if source.exists():
            shutil.copy(source, work / "settings" / name)
    (work / "settings" / "logstash.yml").write_text(
        "allow_superuser: true\nxpack.geoip.downloader.enabled: false\n"
        "queue.type: persisted\ndead_letter_queue.enable: true\napi.http.port: 19600\n")
    (work / "settings" / "pipelines.yml").write_text("")
    conf = work / "eventtrail.conf"
    conf.write_text(pipeline_text())
    # Predictions come from the pipeline as shipped (the copy differs only in ports and outputs).
    config = parse(PIPELINE.read_text())

    es_log, ls_log = work / "es.log", work / "ls.log"
    shutil.rmtree(BASE / "es" / "data", ignore_errors=True)
    es_dir = next((BASE / "es").glob("elasticsearch-*"))
    es_process = start(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "env", "-i", "PATH=/usr/bin:/bin", f"HOME={BASE}/es",
                        "ES_JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64",
                        "ES_JAVA_OPTS=-Xms512m -Xmx512m", str(es_dir / "bin" / "elasticsearch")],
                       es_log)
    ls_process = None
    try:
        wait_for(lambda: es("GET", "/_cluster/health"), 180, "Elasticsearch")
        mappings = swap(schema.mappings())
        for index in (MAIN, DEAD):
            es("PUT", f"/{index}", {"settings": {"number_of_replicas": 0},
                                    "mappings": mappings})
        ls_process = logstash(work, conf, ls_log)

        # What the explainer predicts for each body, and where to find each event afterwards.
        cases, expected = [], {MAIN: 0, DEAD: 0}
        for name, event in CORPUS:
            event = json.loads(json.dumps(event))
            if isinstance(event.get("event"), dict) and event["event"].get("id") == VALID[
                    "event"]["id"]:
                event["event"]["id"] = str(uuid.uuid4())  # one document per case on `create`
            cases.append((name, json.dumps(event)))
        batch = json.dumps([{**VALID, "event": {**VALID["event"], "id": str(uuid.uuid4())}}, 7,
                            {"@metadata": 1}, {**VALID, "event": {**VALID["event"],
                                                                  "id": str(uuid.uuid4())}}])
        cases.append(("batch with bad elements", batch))
        cases.append(("not json", "{not json"))
        predicted: dict[str, list[str]] = {}
        for name, body in cases:
            predicted[name] = [r.stream or "none" for r in explain(config, body)]
        for name, _ in cases:
            for stream in predicted[name]:
                expected[MAIN if stream.endswith("eventtrail-default") else DEAD] += 1

        statuses = [post(body) for _, body in cases]
        with socket.create_connection(("127.0.0.1", TCP_PORT)) as tcp:
            for name, body in cases[:-2]:  # objects only: one per line
                tcp.sendall(body.encode() + b"\n")
                for stream in predicted[name]:
                    expected[MAIN if stream.endswith("eventtrail-default") else DEAD] += 1
        # The tcp copies of valid events share the http copies' ids: `create` keeps the first.
        duplicates = sum(1 for name, _ in cases[:-2]
                         if predicted[name] == ["logs-eventtrail-default"])
        expected[MAIN] -= duplicates

        def counts() -> dict[str, int]:
            es("POST", f"/{MAIN},{DEAD}/_refresh")
            return {index: es("GET", f"/{index}/_count")["count"] for index in (MAIN, DEAD)}

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and counts() != expected and ls_process.poll() is None:
            time.sleep(2)
        first = counts()
        alive_after_corpus = ls_process.poll() is None
        # Each single-event case with an id of its own: in the main index exactly when predicted.
        mismatches = []
        for name, body in cases[:-2]:
            event_id = (json.loads(body).get("event") or {}).get("id") if isinstance(
                json.loads(body).get("event"), dict) else None
            if not isinstance(event_id, str) or event_id == VALID["event"]["id"]:
                continue
            try:
                es("GET", f"/{MAIN}/_doc/{urllib.request.quote(event_id, safe='')}")
                stored = True
            except urllib.error.HTTPError:
                stored = False
            if stored != (predicted[name] == ["logs-eventtrail-default"]):
                mismatches.append(name)

        # The poison test: restart on the persisted queue, and keep running for 30 s.
        stop(ls_process)
        ls_process = logstash(work, conf, ls_log)
        time.sleep(30)
        alive_after_restart = ls_process.poll() is None
        log = ls_log.read_text(errors="replace")
        dlq = sum(p.stat().st_size for p in (work / "data" / "dead_letter_queue").rglob("*.log")
                  if p.is_file()) if (work / "data" / "dead_letter_queue").exists() else 0
        version = re.search(r'logstash\.version" => "([^"]+)"', log)
        record = {
            "provenance": {
                "what": "scripts/real_logstash_run.py: the hostile corpus sent to a real Logstash "
                        "running logstash/pipeline/eventtrail.conf",
                "logstash": version.group(1) if version else "unknown",
                "elasticsearch": es("GET", "/")["version"]["number"],
                "built_with": "../shared/tools/real-logstash (setup-real-elk.sh, add-geoip.sh)",
                # What was run: a later change to any of these calls for a new run.
                "inputs_sha256": inputs_digest(),
                "pipeline_commit": subprocess.run(
                    ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                    text=True).stdout.strip(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average": os.getloadavg(),
            },
            "cases": len(cases),
            "http_statuses": sorted(set(statuses)),
            "expected_documents": expected,
            "documents": first,
            "cases_checked_one_by_one": sum(
                1 for name, body in cases[:-2]
                if isinstance(json.loads(body).get("event"), dict)
                and isinstance(json.loads(body)["event"].get("id"), str)),
            "cases_not_where_the_explainer_said": mismatches,
            "pipeline_alive_after_corpus": alive_after_corpus,
            "pipeline_alive_30s_after_restart": alive_after_restart,
            "pipeline_worker_errors": log.count("Pipeline worker error"),
            "ruby_exceptions": log.count("_rubyexception") + log.count("Ruby exception occurred"),
            "elasticsearch_rejections_in_dlq_bytes": dlq,
            "type_gate_errors": counts_of(MAIN, DEAD, "_eventtrail_type_gate_error"),
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record, indent=2))
    finally:
        if ls_process is not None:
            stop(ls_process)
        stop(es_process)


def counts_of(*indices_and_tag: str) -> int:
    *indices, tag = indices_and_tag
    query = {"query": {"term": {"tags": tag}}}
    return sum(es("POST", f"/{index}/_count", query)["count"] for index in indices)


if __name__ == "__main__":
    main()
