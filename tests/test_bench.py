"""The benchmark scripts still run end to end and print their tables (tiny sizes, no timings)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(script, *args):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--quick", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def rows(out, title):
    """The data rows of the Markdown table under the heading that starts with ``title``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"### {title}"))
    table = []
    for line in lines[start + 4:]:  # heading, blank line, header, rule
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table


def test_capture_benchmark_prints_its_tables():
    out = run("capture.py", "--rounds", "1", "--requests", "20", "--warmup", "5",
              "--sessions", "7")
    for mode in ("anonymous", "logged in"):
        table = rows(out, f"{mode}: per request")
        assert [row[0][:3] for row in table] == ["(a)", "(b)", "(c)"]
        assert [row[1] for row in table] == ["20", "20", "20"]
    assert out.count("Checks: the receiver got 25 events for 25 (b) requests; easy-audit wrote "
                     "25 RequestEvent rows") == 2
    assert "cycle through 7 users" in out
    assert [row[0] for row in rows(out, "Event Trail's added cost per request")] == [
        "anonymous", "logged in"]


def test_delivery_benchmark_prints_its_tables():
    out = run("delivery.py", "--seconds", "1", "--their-events", "120", "--their-cap", "30",
              "--memory-events", "2000", "--sweep-seconds", "0.3", "--shutdown-events", "300")
    throughput = rows(out, "(i) Sustained throughput")
    assert [row[0] for row in throughput] == ["logstash-tcp", "logstash-http"]
    # Each once, none bad: events put == documents received == distinct ids.
    assert all(row[-1] == "yes" and row[8] == "0" and row[5] == row[6] == row[7]
               for row in throughput), throughput
    theirs = rows(out, "(ii) python-logstash-async")
    assert [(row[0], row[2], row[3]) for row in theirs] == [
        ("defaults", "120", "120"), ("close-wait 0", "120", "120"), ("tuned", "120", "120")]
    assert len(rows(out, "Ratio, same run")) == 2
    memory = rows(out, "(iii) Memory")
    assert memory[0][0] == "0" and memory[-2][4] == "2,000"  # all spooled once caught up
    sweep = rows(out, "Where queue_full begins")
    assert {row[0] for row in sweep} == {"down", "up (tcp)"}
    stops = rows(out, "(iv) Handoff.stop()")
    assert [(row[0], row[1]) for row in stops] == [
        ("logstash-tcp", "refused"), ("logstash-tcp", "blackhole"),
        ("logstash-http", "refused"), ("logstash-http", "blackhole")]
    assert stops[0][4] == "300" and stops[2][4] == "300"  # refused: everything stays spooled


def test_end_to_end_benchmark_prints_its_table():
    out = run("e2e.py", "--rounds", "1", "--seconds", "0.5", "--clients", "2")
    table = rows(out, "On and off, interleaved")
    assert [(row[0], row[1]) for row in table] == [
        ("trivial view", "off"), ("trivial view", "on"), ("trivial view", "on / off"),
        ("community page", "off"), ("community page", "on"), ("community page", "on / off")]
    assert out.count("requests with Event Trail on (warm-ups and start-up probes included)") == 2
