"""The committed browser script is exactly what the npm sources build to."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "app/eventtrail/static/eventtrail/eventtrail.js"


def test_the_committed_script_equals_a_fresh_build(tmp_path):
    fresh = tmp_path / "eventtrail.js"
    subprocess.run(["node", str(ROOT / "frontend/build.mjs"), str(fresh)], check=True,
                   cwd=ROOT / "frontend", timeout=60)
    assert fresh.read_bytes() == COMMITTED.read_bytes(), "run: npm --prefix frontend run build"


def test_the_script_has_no_remote_code_and_sends_only_to_the_collector():
    script = COMMITTED.read_text()
    assert "sendBeacon" in script and "keepalive" in script
    assert "http://" not in script and "https://" not in script  # no CDN, no third party
    assert "eventtrail-config" in script and "data-eventtrail-video" in script
