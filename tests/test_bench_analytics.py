"""bench/analytics.py --quick runs end to end and reports every request (no timing asserted)."""
import json
import subprocess
import sys
from pathlib import Path

from bench import analytics

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_reports_every_page_and_endpoint(tmp_path):
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/analytics.py"), "--quick", "--stores", "sqlite",
         "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["events"] == 20_000
    (sqlite,) = result["stores"]
    subjects = {"community": "c", "user": "u", "article": "a", "staff": "s"}
    names = [name for name, _, _ in analytics.requests(subjects)]
    assert list(sqlite["latency_ms"]) == [*names, "poll: site data.json, nothing new (304)",
                                          "poll: site data.json, one event just arrived"]
    # Every /api/analytics/ endpoint the app serves is among them.
    from eventtrail.analytics.api import AnalyticsView

    def endpoints(cls):
        for sub in cls.__subclasses__():
            if "name" in sub.__dict__:
                yield sub.name
            yield from endpoints(sub)

    asked = {url.split("/")[3] for _, url, _ in analytics.requests(subjects)
             if url.startswith("/api/analytics/")}
    assert set(endpoints(AnalyticsView)) <= asked
    assert sqlite["first_ms"] > 0
    for name, figures in sqlite["latency_ms"].items():
        assert 0 < figures["p50"] <= figures["p95"] and figures["n"] >= 3, name
        assert f"| {name} |" in done.stdout
    assert "load average" in done.stdout


def test_weekly_layout_splits_events_by_week_back_from_the_end_oldest_first(tmp_path):
    until = "2026-12-07T08:00:00+00:00"
    stamps = ["2026-12-07T07:59:59.000Z", "2026-11-30T08:00:01.000Z", "2026-11-30T07:59:59.000Z",
              "2026-11-08T09:00:00.000Z", "2026-12-01T00:00:00.000Z", "2026-06-01T00:00:00.000Z"]
    path = tmp_path / "prepared.jsonl"
    path.write_text("".join(json.dumps({"@timestamp": s, "n": i}) + "\n"
                            for i, s in enumerate(stamps)))
    weeks = analytics._weeks(path, until)
    assert [w.name for w in weeks] == ["week-4.jsonl", "week-1.jsonl", "week-0.jsonl"]
    held = [[json.loads(line)["n"] for line in w.read_text().splitlines()] for w in weeks]
    assert held == [[3, 5], [2], [0, 1, 4]]  # older history: the first index


def test_the_engine_loader_leaves_the_merged_segments_searchable(engine, tmp_path, monkeypatch):
    """A long load writes many segments (refreshed as it goes, here after every 300 events); the
    loader merges them, and the merged segment is what searches read once it returns: the first
    request timed after it must not be the one that opens it."""
    from eventtrail.build import prepare
    from eventtrail.capture import draft_for

    from elasticsearch import helpers

    lines = []
    for i in range(1500):
        prepared = prepare(draft_for("article.view", {
            "eventtrail.community.slug": "c", "eventtrail.target.type": "article",
            "eventtrail.target.id": str(i % 40), "user.id": str(i % 70),
            "http.response.status_code": 200}))
        assert prepared is not None
        lines.append(prepared[1] + "\n")
    path = tmp_path / "prepared.jsonl"
    path.write_text("".join(lines))
    bulk = helpers.bulk

    def refreshed_as_it_goes(client, actions, **kwargs):
        batch: list = []
        for action in [*actions, None]:
            if action is not None:
                batch.append(action)
            if batch and (action is None or len(batch) == 300):
                bulk(client, batch, **kwargs)
                client.indices.refresh(index=batch[0]["_index"])
                batch = []

    monkeypatch.setattr(helpers, "bulk", refreshed_as_it_goes)
    stream = "logs-eventtrail-loadertest"
    try:
        analytics._load_engine(path, engine.url, stream)
        rows = engine.client.cat.segments(index=stream, format="json",
                                          h="segment,docs.count,searchable")
        searchable = [row for row in rows if row["searchable"] == "true"]
        assert len(searchable) == 1, rows
        assert int(searchable[0]["docs.count"]) == len(lines)
    finally:
        engine.client.options(ignore_status=404).indices.delete_data_stream(name=stream)
        engine.client.options(ignore_status=404).indices.delete_index_template(
            name="bench-analytics")
