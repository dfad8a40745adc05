"""docker-compose.yml: accepted by Debian's docker-compose 1.29, and every promise it makes holds."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER_COMPOSE = "/usr/bin/docker-compose"

ELASTIC_SERVICES = {"elasticsearch", "logstash", "kibana", "setup", "setup-kibana"}
NEEDS_HEALTHCHECK = {"elasticsearch", "logstash", "kibana", "postgres", "web", "proxy"}
WAIT_FOR_SETUP = {"logstash", "kibana", "web"}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def env_keys(path):
    keys = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line.partition("=")[0])
    return keys


@pytest.fixture(scope="module")
def raw():
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(raw):
    return yaml.safe_load(raw)


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def compose_config(*args):
    return subprocess.run(
        [DOCKER_COMPOSE, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_docker_compose_1_29_accepts_the_file_with_the_example_env():
    version = subprocess.run([DOCKER_COMPOSE, "version", "--short"], capture_output=True, text=True)
    assert version.stdout.startswith("1.29"), version.stdout + version.stderr
    result = compose_config("--env-file", str(ENV_EXAMPLE), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_resolved_config_pins_every_elastic_image_to_the_one_version():
    result = compose_config("--env-file", str(ENV_EXAMPLE), "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    version = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line.startswith("ELASTIC_VERSION="))["ELASTIC_VERSION"]
    elastic = {name: svc["image"] for name, svc in resolved.items()
               if svc["image"].startswith("docker.elastic.co/")}
    assert set(elastic) == ELASTIC_SERVICES
    assert {image.rsplit(":", 1)[1] for image in elastic.values()} == {version}
    assert version.startswith("9.5.")


def test_a_missing_secret_stops_compose_with_a_message(tmp_path):
    env = tmp_path / "partial.env"
    env.write_text("".join(f"{line}\n" for line in ENV_EXAMPLE.read_text().splitlines()
                           if not line.startswith("ELASTIC_PASSWORD=")))
    result = compose_config("--env-file", str(env), "config", "-q")
    assert result.returncode != 0
    assert "set ELASTIC_PASSWORD in .env" in result.stderr


def test_no_v2_only_top_level_keys(compose):
    keys = {k for k in compose if not k.startswith("x-")}
    assert keys <= {"services", "volumes", "networks"}


def test_elastic_images_use_the_one_version_variable(services):
    for name in ELASTIC_SERVICES:
        image = services[name]["image"]
        assert image.startswith("docker.elastic.co/"), name
        assert image.endswith(":${ELASTIC_VERSION:?set ELASTIC_VERSION in .env}"), name


def test_every_variable_has_a_default_or_is_documented(raw):
    documented = set(env_keys(ENV_EXAMPLE))
    undocumented = {m["name"] for m in VARIABLE.finditer(raw)
                    if m["op"] not in {":-", "-"} and m["name"] not in documented}
    assert undocumented == set()


def test_every_documented_variable_is_used(raw):
    used = {m["name"] for m in VARIABLE.finditer(raw)}
    assert set(env_keys(ENV_EXAMPLE)) - used == set()


def test_required_values_use_the_question_mark_form(raw):
    # Secrets have no default anywhere: compose refuses to start without them.
    for m in VARIABLE.finditer(raw):
        if m["name"].endswith(("_PASSWORD", "_KEY")):
            assert m["op"] == ":?", m.group(0)


def volume_entries(services):
    for name, svc in services.items():
        for entry in svc.get("volumes", []):
            source, _, rest = entry.partition(":")
            target, _, mode = rest.partition(":")
            yield name, source, target, mode


def test_every_bind_mounted_host_path_exists_and_is_read_only(services):
    binds = [(n, s, m) for n, s, _, m in volume_entries(services) if s.startswith((".", "/"))]
    assert binds
    for name, source, mode in binds:
        assert (ROOT / source).exists(), f"{name}: {source}"
        # Read-only, and labelled for SELinux (shared: two services mount ./setup).
        assert mode == "ro,z", f"{name}: {source} should be mounted read-only with `z`"


def test_data_lives_in_named_volumes(compose, services):
    declared = set(compose["volumes"])
    named = {s for _, s, _, _ in volume_entries(services) if not s.startswith((".", "/"))}
    for _, source, target, _ in volume_entries(services):
        assert target, f"anonymous volume {source}"
    assert named == declared
    assert {"elasticsearch-data", "logstash-data", "kibana-data", "postgres-data"} <= declared


def test_healthchecks_where_others_wait_on_them(services):
    for name in NEEDS_HEALTHCHECK:
        assert services[name]["healthcheck"]["test"], name
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}'s health"


def test_logstash_kibana_and_web_wait_for_setup(services):
    for name in WAIT_FOR_SETUP:
        condition = services[name]["depends_on"]["setup"]["condition"]
        assert condition == "service_completed_successfully", name


def test_setup_services_are_one_shot_in_the_default_profile(services):
    for name in ("setup", "setup-kibana"):
        svc = services[name]
        assert "profiles" not in svc, name
        assert svc["restart"] == "no"
        assert svc["entrypoint"] == ["/bin/bash", "/eventtrail/setup/setup.sh"]
    assert services["setup"]["command"] == ["elasticsearch"]
    assert services["setup-kibana"]["command"] == ["kibana"]
    assert services["setup-kibana"]["depends_on"]["kibana"]["condition"] == "service_healthy"


def test_setup_gets_every_value_its_json_data_needs(services):
    placeholders = set()
    for path in (ROOT / "elasticsearch").rglob("*.json"):
        placeholders |= {m["name"] for m in VARIABLE.finditer(path.read_text())}
    assert placeholders
    assert placeholders <= set(services["setup"]["environment"])


def test_logstash_gets_every_variable_its_pipeline_needs(services):
    text = (ROOT / "logstash/pipeline/eventtrail.conf").read_text()
    needed = {m["name"] for m in re.finditer(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)\}", text)}
    assert needed <= set(services["logstash"]["environment"])


def test_logstash_mounts_its_config_and_keeps_queues_in_a_volume(services):
    targets = {t: s for _, s, t, _ in volume_entries({"logstash": services["logstash"]})}
    assert targets["/usr/share/logstash/config/logstash.yml"] == "./logstash/config/logstash.yml"
    assert targets["/usr/share/logstash/config/pipelines.yml"] == "./logstash/config/pipelines.yml"
    assert targets["/usr/share/logstash/pipeline"] == "./logstash/pipeline"
    assert targets["/usr/share/logstash/data"] == "logstash-data"
    assert "9600/?wait_for_status=" in services["logstash"]["healthcheck"]["test"][1]


def test_kibana_has_its_encryption_keys_and_system_user(services):
    env = services["kibana"]["environment"]
    assert env["ELASTICSEARCH_USERNAME"] == "kibana_system"
    for key in ("XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY", "XPACK_SECURITY_ENCRYPTIONKEY",
                "XPACK_REPORTING_ENCRYPTIONKEY"):
        assert env[key].startswith("${KIBANA_"), key


def test_example_kibana_keys_are_long_enough():
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                  if line.startswith("KIBANA_") and "ENCRYPTION_KEY=" in line)
    assert len(values) == 3
    assert all(len(v) >= 32 for v in values.values())


def test_web_runs_migrations_seed_collectstatic_then_gunicorn(services):
    script = services["web"]["command"][-1]
    steps = [
        "manage.py migrate --noinput",
        "manage.py migrate --database events --noinput",
        "manage.py seed_demo",
        "manage.py collectstatic --noinput",
        "exec gunicorn config.wsgi",
    ]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "--worker-class sync" in script
    assert script.startswith("set -e")


def test_web_environment_reads_the_stack(services):
    env = services["web"]["environment"]
    assert env["DJANGO_DEBUG"] == "false"
    assert env["EVENTTRAIL_STORE"] == "elasticsearch"
    assert env["ELASTICSEARCH_API_USER"] == "eventtrail_api"
    assert env["EVENTTRAIL_DATA_STREAM"] == "logs-eventtrail-${EVENTTRAIL_NAMESPACE:-default}"
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["EVENTTRAIL_DATABASE_URL"] == env["DATABASE_URL"]
    assert services["web"]["build"] == "."


def test_traffic_profile_runs_the_activity_generator(services):
    traffic = services["traffic"]
    assert traffic["profiles"] == ["traffic"]
    assert traffic["command"] == ["python", "manage.py", "generate_activity", "--days", "30",
                                  "--events", "200000", "--seed", "1"]
    assert traffic["image"] == services["web"]["image"]
    spools = {n: s for n, s, t, _ in volume_entries(services) if t == "/var/lib/eventtrail"}
    # Two delivery workers must never share one spool.
    assert spools["traffic"] != spools["web"]


def test_published_ports_bind_to_the_configured_address(services):
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port.startswith("${EVENTTRAIL_BIND_ADDRESS:-127.0.0.1}:"), name


def test_dockerfile_installs_with_the_pins():
    text = (ROOT / "Dockerfile").read_text()
    assert text.splitlines()[1] == "FROM python:3.11-slim"
    assert "pip install -c constraints.txt '.[server]'" in text
    assert "USER eventtrail" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored


def kibana_public_url(tmp_path, **env):
    """What Kibana's start command sets SERVER_PUBLICBASEURL to, with compose resolving .env."""
    file = tmp_path / "env"
    file.write_text(ENV_EXAMPLE.read_text() + "".join(f"\n{k}={v}" for k, v in env.items()))
    result = compose_config("--env-file", str(file), "config")
    assert result.returncode == 0, result.stderr
    kibana = yaml.safe_load(result.stdout)["services"]["kibana"]
    shell, flag, script = kibana["command"]
    assert (shell, flag) == ("/bin/sh", "-c") and script.endswith("exec /usr/local/bin/kibana-docker")
    # `config` prints the file back escaped ($$); the container gets single dollars.
    probe = script.replace("$$", "$").replace("exec /usr/local/bin/kibana-docker",
                                              'echo "$SERVER_PUBLICBASEURL"')
    environment = {k: str(v) for k, v in kibana["environment"].items()}
    return subprocess.run(["sh", "-c", probe], env=environment, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_kibanas_public_url_follows_its_published_port(services, tmp_path):
    assert kibana_public_url(tmp_path) == "http://localhost:5601"
    assert kibana_public_url(tmp_path, KIBANA_PORT="5702") == "http://localhost:5702"
    assert kibana_public_url(tmp_path, KIBANA_PORT="5702",
                             KIBANA_PUBLIC_URL="https://kibana.example.org") == (
        "https://kibana.example.org")
    # Neither .env file pins the URL, or the port-derived default would never apply.
    for env in (ENV_EXAMPLE, ROOT / ".env"):
        assert "KIBANA_PUBLIC_URL" not in env_keys(env)
    web = services["web"]["environment"]
    assert web["KIBANA_PUBLIC_URL"] == "${KIBANA_PUBLIC_URL:-}"
    assert web["KIBANA_PORT"] == "${KIBANA_PORT:-5601}"


def test_the_site_links_to_kibana_at_its_published_port():
    script = ("import django; django.setup(); from eventtrail.conf import get_config; "
              "print(get_config()['KIBANA_URL'])")

    def url(**env):
        return subprocess.run([sys.executable, "-c", script], cwd=ROOT / "app", check=True,
                              env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
                                   **env}, capture_output=True, text=True).stdout.strip()

    assert url(KIBANA_PORT="5702") == "http://localhost:5702"
    assert url(KIBANA_PORT="5702", KIBANA_PUBLIC_URL="https://k.example.org") == (
        "https://k.example.org")


def test_logstash_is_healthy_on_its_top_level_status_only(services):
    (command,) = [c for c in services["logstash"]["healthcheck"]["test"] if "curl" in c]
    # The root API itself compares Logstash's overall status (HealthObserver) and answers 408
    # past the timeout; curl -f turns that into a failure. Nested indicators are never read.
    assert "http://localhost:9600/?wait_for_status=yellow&timeout=" in command
    assert command.startswith("curl -fsS") and "grep" not in command
