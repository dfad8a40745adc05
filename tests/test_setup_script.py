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


# A curl stand-in: answers each call with the next line of $ANSWERS ("503", "200 body", or
# "000" for a refused connection), and logs "METHOD URL" to $CALLS.
FAKE_CURL = r"""#!/usr/bin/env bash
out= method=GET url=
while (($#)); do
  case $1 in
    -o) out=$2; shift 2 ;;
    -X) method=$2; shift 2 ;;
    -K|-w|-H|--data-binary|--form) shift 2 ;;
    -*) shift ;;
    *) url=$1; shift ;;
  esac
done
echo "$method $url" >>"$CALLS"
answer=$(head -n 1 "$ANSWERS"); sed -i 1d "$ANSWERS"
code=${answer%% *}; body=${answer#"$code"}
if [[ $code == 000 ]]; then echo "curl: (7) Failed to connect" >&2; exit 7; fi
printf '%s' "${body# }" >"$out"
printf '%s' "$code"
"""


@pytest.fixture
def fake_curl(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(FAKE_CURL)
    (bin_dir / "curl").chmod(0o755)

    def run(snippet, answers):
        (tmp_path / "answers").write_text("\n".join(answers) + "\n")
        (tmp_path / "calls").write_text("")
        result = run_bash(
            f"init_work_dir; {snippet}", PATH=f"{bin_dir}:{os.environ['PATH']}",
            ANSWERS=str(tmp_path / "answers"), CALLS=str(tmp_path / "calls"),
            RETRY_DELAY="0", ELASTIC_PASSWORD="x", SETUP_TIMEOUT="30")
        return result, (tmp_path / "calls").read_text().splitlines()

    return run


def test_a_5xx_or_a_refused_connection_is_retried(fake_curl):
    result, calls = fake_curl('request PUT "$ES_URL/x" && echo "ok $STATUS"',
                              ["503", "000", "429", "200 {}"])
    assert result.returncode == 0 and "ok 200" in result.stdout, result.stderr
    assert calls == ["PUT http://elasticsearch:9200/x"] * 4
    assert "trying again" in result.stderr


def test_a_4xx_is_not_retried_and_retries_end(fake_curl):
    result, calls = fake_curl('request PUT "$ES_URL/x" || echo "failed $STATUS"', ["400 bad"])
    assert "failed 400" in result.stdout and len(calls) == 1
    result, calls = fake_curl('request PUT "$ES_URL/x" || echo "failed $STATUS"', ["503"] * 10)
    assert "failed 503" in result.stdout and len(calls) == 6  # REQUEST_TRIES


def test_put_json_survives_a_cluster_that_is_still_recovering(fake_curl, tmp_path):
    body = tmp_path / "policy.json"
    body.write_text('{"policy": {}}')
    result, calls = fake_curl(f'put_json _ilm/policy/p "{body}"', ["503", "503", "200 {}"])
    assert result.returncode == 0, result.stderr
    assert len(calls) == 3


def test_a_data_stream_created_by_a_lost_first_answer_is_found(fake_curl):
    result, calls = fake_curl('ensure_data_stream logs-x-default',
                              ["404", "000", "400 resource_already_exists_exception", "200 {}"])
    assert result.returncode == 0, result.stderr
    assert [c.split()[0] for c in calls] == ["GET", "PUT", "PUT", "GET"]


def test_kibana_is_ready_when_its_saved_objects_are_even_if_overall_is_degraded(fake_curl):
    degraded = ('200 {"status":{"overall":{"level":"degraded","summary":"1 service is degraded"},'
                '"core":{"elasticsearch":{"level":"available"},"savedObjects":{"level":'
                '"available","summary":"SavedObjects service has completed migrations"}}}}')
    migrating = ('200 {"status":{"overall":{"level":"unavailable"},"core":{"savedObjects":'
                 '{"level":"unavailable","summary":"migrating"}}}}')
    result, calls = fake_curl("wait_for_kibana && echo ready", [migrating, degraded])
    assert "ready" in result.stdout, result.stderr
    assert calls == ["GET http://kibana:5601/api/status"] * 2


def test_the_saved_objects_import_is_retried(fake_curl, tmp_path):
    result, calls = fake_curl(
        'BUNDLE_DIR=$PWD; import_saved_objects',
        ["503", "200 {\"success\":true,\"successCount\":3}"])
    assert result.returncode == 0, result.stderr
    assert len(calls) == 2 and "imported" in result.stderr
