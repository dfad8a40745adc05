"""elasticsearch/: the template rendered from the schema, the ILM policy, the roles and users."""
import json
import re
from pathlib import Path

import pytest
from eventtrail import schema
from eventtrail.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
ES = ROOT / "elasticsearch"
SETUP = (ROOT / "setup/setup.sh").read_text()
STREAM_PATTERNS = ["logs-eventtrail-*", "logs-eventtrail.*-*"]
# Why each is needed is written in the role's metadata.why.
WRITER_PRIVILEGES = {"create_doc", "create_index", "auto_configure"}


def load(path):
    return json.loads(path.read_text())


def setup_constant(name):
    return re.search(rf"^{name}=(\S+)$", SETUP, re.M).group(1)


def test_index_template_is_the_schema_rendering():
    # Regenerate with: cd app && python manage.py eventtrail_schema --template -o ../elasticsearch/index-template.json
    committed = load(ES / "index-template.json")
    assert committed == schema.index_template(DEFAULTS["DATA_STREAM"])


def test_index_template_covers_the_event_and_dead_letter_streams():
    template = load(ES / "index-template.json")
    assert template["index_patterns"] == STREAM_PATTERNS
    assert template["priority"] > 500  # above the built-in logs-*-* templates
    settings = template["template"]["settings"]["index"]
    assert settings["mode"] == "standard"
    assert settings["lifecycle"]["name"] == setup_constant("ILM_POLICY_NAME")
    assert template["template"]["mappings"]["dynamic"] is False


def test_ilm_policy_rolls_over_hot_and_deletes_after_the_configured_days():
    phases = load(ES / "ilm-policy.json")["policy"]["phases"]
    rollover = phases["hot"]["actions"]["rollover"]
    assert {"max_primary_shard_size", "max_age"} <= set(rollover)
    assert phases["delete"]["min_age"] == "${EVENTTRAIL_RETENTION_DAYS}d"
    assert phases["delete"]["actions"] == {"delete": {}}


def test_setup_applies_the_policy_before_the_template():
    policy = SETUP.index('"_ilm/policy/$ILM_POLICY_NAME"')
    template = SETUP.index('"_index_template/$INDEX_TEMPLATE_NAME"')
    users = SETUP.index("put_each users")
    roles = SETUP.index("put_each roles")
    assert roles < users < policy < template


@pytest.fixture(scope="module")
def roles():
    return {p.stem: load(p) for p in (ES / "roles").glob("*.json")}


@pytest.fixture(scope="module")
def users():
    return {p.stem: load(p) for p in (ES / "users").glob("*.json")}


def test_writer_role_may_only_create_events(roles):
    writer = roles["eventtrail_writer"]
    assert writer["cluster"] == ["monitor"]
    assert len(writer["indices"]) == 1
    grant = writer["indices"][0]
    assert grant["names"] == STREAM_PATTERNS
    assert set(grant["privileges"]) == WRITER_PRIVILEGES
    assert set(writer["metadata"]["why"]) == WRITER_PRIVILEGES | {"monitor"}


def test_reader_role_is_read_only(roles):
    reader = roles["eventtrail_reader"]
    assert reader["cluster"] == []
    assert reader["indices"] == [{
        "names": STREAM_PATTERNS,
        "privileges": ["read", "view_index_metadata"],
        "allow_restricted_indices": False,
    }]


def test_users_and_their_roles(users, roles):
    assert users["logstash_writer"]["roles"] == ["eventtrail_writer"]
    assert users["eventtrail_api"]["roles"] == ["eventtrail_reader"]
    assert users["kibana_admin"]["roles"] == ["kibana_admin", "eventtrail_reader"]
    custom = {r for user in users.values() for r in user["roles"]} - {"kibana_admin"}
    assert custom <= set(roles)


def test_passwords_come_from_the_environment_never_from_the_files(users):
    for name, user in users.items():
        assert re.fullmatch(r"\$\{[A-Z_]+_PASSWORD\}", user["password"]), name
    assert len({user["password"] for user in users.values()}) == len(users)


def test_the_pipeline_writes_as_the_writer_user():
    pipeline = (ROOT / "logstash/pipeline/eventtrail.conf").read_text()
    assert set(re.findall(r'user => "([^"]+)"', pipeline)) >= {"logstash_writer"}
    assert 'password => "${LOGSTASH_WRITER_PASSWORD}"' in pipeline


def test_elasticsearch_config_keeps_security_on():
    text = (ES / "config/elasticsearch.yml").read_text()
    assert re.search(r"^xpack\.security\.enabled: true$", text, re.M)
    assert re.search(r"^discovery\.type: single-node$", text, re.M)
