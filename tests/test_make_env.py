"""scripts/make_env.py: the committed development .env, and random secrets for `make up`."""
import importlib.util
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_env", ROOT / "scripts/make_env.py")
make_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_env)

EXAMPLE = (ROOT / ".env.example").read_text()
SECRETS = {
    "ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "LOGSTASH_WRITER_PASSWORD",
    "ELASTICSEARCH_API_PASSWORD", "KIBANA_ADMIN_PASSWORD", "KIBANA_ENCRYPTION_KEY",
    "KIBANA_SECURITY_ENCRYPTION_KEY", "KIBANA_REPORTING_ENCRYPTION_KEY",
    "LOGSTASH_HTTP_PASSWORD", "DJANGO_SECRET_KEY", "POSTGRES_PASSWORD",
}


def test_every_password_and_key_is_a_secret():
    keys = make_env.parse(EXAMPLE)
    assert set(make_env.secret_keys(EXAMPLE)) == SECRETS
    assert {k for k in keys if k.endswith(("_PASSWORD", "_KEY"))} == SECRETS


def test_committed_env_is_the_marked_development_rendering():
    committed = (ROOT / ".env").read_text()
    assert committed == make_env.render_dev(EXAMPLE)
    assert make_env.is_development(committed)


def test_generated_env_replaces_every_secret_and_nothing_else():
    text = make_env.render_generated(EXAMPLE)
    example, generated = make_env.parse(EXAMPLE), make_env.parse(text)
    assert list(generated) == list(example)
    for key, value in generated.items():
        if key in SECRETS:
            assert value != example[key] and len(value) == make_env.SECRET_LENGTH, key
            assert value.isalnum(), key
        else:
            assert value == example[key], key
    assert len({generated[k] for k in SECRETS}) == len(SECRETS)
    assert not make_env.is_development(text)


def test_overrides_apply_and_unknown_keys_are_refused():
    text = make_env.render_generated(EXAMPLE, {"WEB_PORT": "18000"})
    assert make_env.parse(text)["WEB_PORT"] == "18000"
    with pytest.raises(ValueError, match="NO_SUCH_SETTING"):
        make_env.render_generated(EXAMPLE, {"NO_SUCH_SETTING": "1"})


def test_main_replaces_the_development_env_but_keeps_generated_secrets(tmp_path, capsys):
    env = tmp_path / ".env"
    env.write_text(make_env.render_dev(EXAMPLE))
    args = ["--env", str(env), "--example", str(ROOT / ".env.example")]

    assert make_env.main(args) == 0
    first = env.read_text()
    assert not make_env.is_development(first)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600

    assert make_env.main(args) == 0
    assert env.read_text() == first
    assert "kept" in capsys.readouterr().out

    assert make_env.main([*args, "--force"]) == 0
    assert env.read_text() != first


def test_main_writes_an_env_when_there_is_none(tmp_path):
    env = tmp_path / "fresh.env"
    assert make_env.main(["--env", str(env), "--set", "WEB_PORT=18000"]) == 0
    values = make_env.parse(env.read_text())
    assert values["WEB_PORT"] == "18000"
    assert values["ELASTIC_PASSWORD"] != make_env.parse(EXAMPLE)["ELASTIC_PASSWORD"]
