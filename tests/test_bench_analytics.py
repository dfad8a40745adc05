"""bench/analytics.py --quick runs end to end and reports every analytic (no timing asserted)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_reports_every_analytic(tmp_path):
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/analytics.py"), "--quick", "--stores", "sqlite",
         "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["events"] == 20_000
    (sqlite,) = result["stores"]
    assert len(sqlite["latency_ms"]) == 14
    for name, figures in sqlite["latency_ms"].items():
        assert 0 < figures["p50"] <= figures["p95"], name
        assert f"| {name} |" in done.stdout
