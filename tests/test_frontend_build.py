"""The committed browser scripts are exactly what the npm sources build to."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "app/eventtrail/static/eventtrail"
COMMITTED = STATIC / "eventtrail.js"
ANALYTICS = STATIC / "analytics.js"


def test_the_committed_scripts_equal_a_fresh_build(tmp_path):
    fresh, fresh_analytics = tmp_path / "eventtrail.js", tmp_path / "analytics.js"
    subprocess.run(["node", str(ROOT / "frontend/build.mjs"), str(fresh), str(fresh_analytics)],
                   check=True, cwd=ROOT / "frontend", timeout=60)
    assert fresh.read_bytes() == COMMITTED.read_bytes(), "run: npm --prefix frontend run build"
    assert fresh_analytics.read_bytes() == ANALYTICS.read_bytes(), \
        "run: npm --prefix frontend run build"


def test_the_script_has_no_remote_code_and_sends_only_to_the_collector():
    script = COMMITTED.read_text()
    assert "sendBeacon" in script and "keepalive" in script
    assert "http://" not in script and "https://" not in script  # no CDN, no third party
    assert "eventtrail-config" in script and "data-eventtrail-video" in script


def test_the_analytics_script_bundles_its_chart_library_and_loads_nothing_remote():
    script = ANALYTICS.read_text()
    assert "http://" not in script and "https://" not in script
    assert "If-None-Match" in script and "et-analytics-data" in script
    assert "getLabelForValue" in script  # Chart.js is inside the bundle, not fetched
