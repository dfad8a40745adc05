"""A host that installs Event Trail gets the reusable app only, never the demo project."""
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_only_eventtrail_with_its_templates_and_static(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, capture_output=True,
                   cwd=tmp_path)
    (wheel,) = tmp_path.glob("eventtrail-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"eventtrail"}
    assert "eventtrail/static/eventtrail/analytics.js" in names
    assert any(n.startswith("eventtrail/templates/") for n in names)
    assert any(n.startswith("eventtrail/migrations/0001") for n in names)
