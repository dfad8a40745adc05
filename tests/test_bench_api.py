"""bench/api.py runs end to end on tiny sizes and prints its table (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
def test_quick_run_prints_the_table(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "api.py"),
            "--quick",
            "--sizes",
            "3000",
            "--stores",
            "sqlite,postgresql",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    assert "loaded 3,000 events" in text
    assert "every store counts" in text and "WARNING" not in text
    header = "| operation | events | SQLite p50 / p95 ms | PostgreSQL p50 / p95 ms |"
    assert header in text
    rows = [line for line in text.splitlines() if re.match(r"^\| (list|group_by|interval)", line)]
    assert len(rows) == 6
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "3,000"
        for cell in cells[2:4]:
            assert re.fullmatch(r"[\d.]+ / [\d.]+", cell), row
        assert re.fullmatch(r"[\d.]+x", cells[4])
    figures = out.read_text()
    assert '"store": "postgresql"' in figures and '"operation": "deep"' in figures
