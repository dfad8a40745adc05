"""A full disk under the spool loses nothing uncounted and re-sends at most one batch.

The spool sits on a 2 MB tmpfs mounted in a private mount namespace (``unshare``: as root, as
CI runs, or as any user where user namespaces are allowed), so writes fail with ENOSPC for real:
no mock of the spool. The scenario is tests/support/full_disk.py.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_full_disk_loses_nothing_uncounted_and_sends_nothing_twice_in_a_loop(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    namespace = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        namespace[1:1] = ["--user", "--map-root-user"]
    script = (f'mount -t tmpfs -o size=2m tmpfs "{mount}" && '
              f'exec "{sys.executable}" -m tests.support.full_disk "{mount}"')
    done = subprocess.run([*namespace, "sh", "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    values, at_rest = result["counters"], result["at_rest"]

    assert result["disk_filled"] and values["spool_errors"] > 0  # the disk really filled
    # The counters operators read were written on the full disk, and at the end.
    assert result["persisted_while_full"] == 1500
    assert result["persisted_at_the_end"] == 3000
    assert result["drained"]
    # Every event is delivered or dropped under a named reason: exact counts, nothing waiting.
    dropped = sum(at_rest["dropped"].values())
    assert values["enqueued"] == 3000
    assert at_rest["in_spool"] == at_rest["in_memory"] == 0
    assert values["enqueued"] == values["delivered"] + dropped
    assert set(at_rest["dropped"]) <= {"spool_unwritable", "queue_full"}, at_rest["dropped"]
    # What was delivered arrived; a batch is re-sent at most once per failure, never in a loop.
    assert result["distinct"] == values["delivered"]
    assert result["received"] - result["distinct"] <= result["batch"]
    # The receiver came back while the disk was full: forgetting delivered rows needed the
    # space the spool had set aside, or the spool that filled the disk could never drain.
    assert "using the space set aside" in done.stderr
