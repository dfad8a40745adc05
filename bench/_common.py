"""Shared by the benchmark scripts: a temporary var dir, Django setup, workloads, tables."""
from __future__ import annotations

import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def setup(prefix: str) -> Path:
    """Put the repo and app/ on sys.path, point every var path at a fresh temp dir, start Django.

    Returns the temp dir; ``cleanup`` removes it.
    """
    # Run as ``python bench/x.py``, sys.path[0] is bench/ itself; its module names (capture,
    # delivery, settings) must not shadow anything, so it goes.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    for path in (str(REPO), str(REPO / "app")):
        if path not in sys.path:
            sys.path.insert(0, path)
    var_dir = Path(tempfile.mkdtemp(prefix=f"eventtrail-bench-{prefix}-"))
    os.environ["EVENTTRAIL_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    return var_dir


def cleanup(var_dir: Path) -> None:
    shutil.rmtree(var_dir, ignore_errors=True)


def machine() -> str:
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load} at start"
    )


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, so the output pastes into the README as is."""
    cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [f"\n### {title}\n", line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --- the event workload --------------------------------------------------------------------

_SLUGS = ["python-users", "rust-lang", "django", "data-science", "gardening", "chess-club"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36",
]


def drafts(seed: int = 1) -> Iterator[dict[str, Any]]:
    """An endless, deterministic stream of page-view drafts; built, one is about 540 bytes.

    They go through ``eventtrail.capture.draft_for``, so building, processors and serialising
    are exactly what a real request's event goes through.
    """
    from eventtrail.capture import draft_for

    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        slug = rng.choice(_SLUGS)
        fields: dict[str, Any] = {
            "url.path": f"/c/{slug}/a/{rng.randrange(1, 5000)}/",
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "user_agent.original": rng.choice(_AGENTS),
        }
        if n % 3 == 0:
            fields["user.id"] = str(rng.randrange(1, 2000))
        yield draft_for(
            "page.view", fields, remote=f"198.51.100.{rng.randrange(1, 255)}",
            query="page=2" if n % 4 == 0 else "", duration_ns=rng.randrange(50_000, 5_000_000),
        )


def doc_size(sample: int = 200) -> float:
    """Mean size in bytes of a built document from ``drafts``."""
    from eventtrail.build import prepare

    stream = drafts(seed=99)
    sizes = []
    for _ in range(sample):
        prepared = prepare(next(stream))
        assert prepared is not None
        sizes.append(len(prepared[1].encode()))
    return sum(sizes) / len(sizes)


# --- receivers in their own process ---------------------------------------------------------


class ReceiverProcess:
    """A ``_receiver.py`` child: a local TCP or HTTP receiver that counts distinct event ids."""

    def __init__(self, kind: str) -> None:
        import subprocess

        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "_receiver.py"), kind],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def counts(self) -> tuple[int, int, int]:
        """(distinct event ids, documents, bad documents) received so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        distinct, docs, bad = (int(x) for x in self.proc.stdout.readline().split())
        return distinct, docs, bad

    def count(self) -> int:
        return self.counts()[0]

    def stop(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
