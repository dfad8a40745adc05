"""setup/setup.sh: valid bash, clean under shellcheck, and its JSON rendering safe for any password."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "setup/setup.sh"
SHELL_SCRIPTS = sorted([*ROOT.glob("setup/*.sh"), *ROOT.glob("scripts/*.sh")])


def run_bash(snippet, **env):
    """Source setup.sh (which runs nothing when sourced), then run ``snippet``."""
    return subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; {snippet}'],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
    )


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_script_parses(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_is_clean(script):
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_script_is_strict():
    assert "set -euo pipefail" in SCRIPT.read_text().splitlines()[:12]


def test_render_escapes_passwords_for_json():
    tricky = 'quo"te back\\slash amp& dollar${KIBANA_ADMIN_PASSWORD} ünï'
    result = run_bash("render elasticsearch/users/logstash_writer.json",
                      LOGSTASH_WRITER_PASSWORD=tricky, LANG="C.UTF-8")
    assert result.returncode == 0, result.stderr
    user = json.loads(result.stdout)
    assert user["password"] == tricky
    assert user["roles"] == ["eventtrail_writer"]


def test_render_fills_in_the_retention_days():
    result = run_bash("render elasticsearch/ilm-policy.json", EVENTTRAIL_RETENTION_DAYS="30")
    assert result.returncode == 0, result.stderr
    policy = json.loads(result.stdout)["policy"]
    assert policy["phases"]["delete"]["min_age"] == "30d"


def test_render_refuses_an_empty_value():
    result = run_bash("render elasticsearch/users/eventtrail_api.json")
    assert result.returncode != 0
    assert "${ELASTICSEARCH_API_PASSWORD} is empty" in result.stderr


def test_render_refuses_an_unknown_placeholder(tmp_path):
    data = tmp_path / "role.json"
    data.write_text('{"password": "${HOME}"}')
    result = run_bash(f'render "{data}"', HOME="/root")
    assert result.returncode != 0
    assert "${HOME} is not a placeholder setup fills in" in result.stderr


def test_render_refuses_control_characters():
    result = run_bash("render elasticsearch/users/kibana_admin.json",
                      KIBANA_ADMIN_PASSWORD="line\nbreak")
    assert result.returncode != 0
    assert "control character" in result.stderr


def test_settings_are_validated_before_anything_is_sent():
    base = {"ELASTIC_PASSWORD": "x", "EVENTTRAIL_NAMESPACE": "default"}
    bad_days = run_bash("check_settings", EVENTTRAIL_RETENTION_DAYS="90d", **base)
    assert bad_days.returncode != 0 and "EVENTTRAIL_RETENTION_DAYS" in bad_days.stderr
    bad_namespace = run_bash("check_settings", EVENTTRAIL_RETENTION_DAYS="90",
                             ELASTIC_PASSWORD="x", EVENTTRAIL_NAMESPACE="my-space")
    assert bad_namespace.returncode != 0 and "EVENTTRAIL_NAMESPACE" in bad_namespace.stderr
    good = run_bash("check_settings", EVENTTRAIL_RETENTION_DAYS="90", **base)
    assert good.returncode == 0, good.stderr


def test_credentials_never_reach_the_command_line():
    result = run_bash('init_work_dir; cat "$WORK_DIR/curl.conf"; stat -c %a "$WORK_DIR"',
                      ELASTIC_PASSWORD='pa"ss')
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['user = "elastic:pa\\"ss"', "700"]
    lines = SCRIPT.read_text().splitlines()
    curl_calls = [line for line in lines if "curl " in line and not line.lstrip().startswith("#")]
    assert curl_calls and all("-K " in line and " -u " not in line for line in curl_calls)


def test_an_unknown_step_prints_usage():
    result = subprocess.run(["bash", str(SCRIPT), "nothing"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "usage: setup.sh elasticsearch|kibana" in result.stderr


def test_kibana_step_imports_exactly_the_dashboards_file():
    text = SCRIPT.read_text()
    assert "SAVED_OBJECTS_FILE=kibana/dashboards/eventtrail.ndjson" in text
    assert "/api/saved_objects/_import?overwrite=true" in text
    assert "-H 'kbn-xsrf: true'" in text
    assert "/api/status" in text
