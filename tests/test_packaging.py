"""A host that installs Event Trail gets the reusable app only, and it works there on its own."""
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, capture_output=True, cwd=out)
    (built,) = out.glob("eventtrail-*.whl")
    return built


def test_the_wheel_holds_only_eventtrail_with_its_templates_and_static(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"eventtrail"}
    assert "eventtrail/static/eventtrail/analytics.js" in names
    assert any(n.startswith("eventtrail/templates/") for n in names)
    assert any(n.startswith("eventtrail/migrations/0001") for n in names)


HOST_SETTINGS = """
from pathlib import Path
BASE = Path(__file__).resolve().parent.parent
SECRET_KEY = "host-secret-key-for-the-packaging-test"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = [
    "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
    "rest_framework", "eventtrail",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "eventtrail.middleware.EventTrailMiddleware",
]
ROOT_URLCONF = "hostsite.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE / "db.sqlite3"}}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
USE_TZ = True
EVENTTRAIL = {"SINK": "jsonl", "JSONL_PATH": str(BASE / "events.jsonl"),
              "SPOOL_DIR": str(BASE / "spool"), "STORE": "database",
              "DATABASE_ALIAS": "default"}
"""

HOST_URLS = """
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("hello/", lambda request: HttpResponse("hello"), name="hello")]
"""

# Runs inside the host: where eventtrail came from, then one request, then a flush.
HOST_REQUEST = """
import json, django
django.setup()
import eventtrail
from django.test import Client
from eventtrail import delivery
status = Client().get("/hello/?password=hunter2").status_code
left = delivery.shutdown(timeout=10)
print(json.dumps({"file": eventtrail.__file__, "status": status, "left": left}))
"""


def test_the_wheel_installs_into_a_fresh_environment_and_captures_an_event(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    # The dependencies come from the test's own environment, appended after the venv's own
    # site-packages (a plain path in a .pth: the repo's editable install is not processed, so
    # the only eventtrail the host can import is the wheel's).
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    host = tmp_path / "host"
    (host / "hostsite").mkdir(parents=True)
    (host / "hostsite" / "__init__.py").write_text("")
    (host / "hostsite" / "settings.py").write_text(HOST_SETTINGS)
    (host / "hostsite" / "urls.py").write_text(HOST_URLS)
    env = {"DJANGO_SETTINGS_MODULE": "hostsite.settings", "PATH": "/usr/bin:/bin"}

    def run(*args):
        return subprocess.run([str(python), *args], cwd=host, env=env, capture_output=True,
                              text=True, timeout=120)

    check = run("-m", "django", "check")
    assert check.returncode == 0, check.stderr
    assert "no issues" in check.stdout
    migrate = run("-m", "django", "migrate", "-v0")
    assert migrate.returncode == 0, migrate.stderr
    request = run("-c", HOST_REQUEST)
    assert request.returncode == 0, request.stderr
    outcome = json.loads(request.stdout.splitlines()[-1])
    assert outcome["file"].startswith(str(site)), outcome
    assert outcome["status"] == 200 and outcome["left"] == 0
    (line,) = (host / "events.jsonl").read_text().splitlines()
    event = json.loads(line)
    assert event["url"]["path"] == "/hello/"
    assert "hunter2" not in line
