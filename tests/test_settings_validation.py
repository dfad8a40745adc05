"""Every setting is checked at start-up, by value, with messages that name the setting and the
value; a sink that cannot be built never turns into silent loss."""
import json
import os
import re
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from eventtrail import conf
from eventtrail.capture import draft_for
from eventtrail.checks import check_imports, check_values
from eventtrail.delivery import Handoff
from eventtrail.delivery.sinks import LogstashHttpSink
from eventtrail.delivery.spool import MemorySpool
from eventtrail.stats import counters

from tests.support.invariant import assert_balanced
from tests.support.receivers import HttpReceiver, free_port

APP = Path(__file__).resolve().parent.parent / "app"
FAST = {"FLUSH_INTERVAL": 0.02, "RETRY_BACKOFF": [0.05, 0.1], "SEND_TIMEOUT": 1.0}


@pytest.mark.parametrize("setting, value", [
    ("SINK", "logstash-htpp"),
    ("SINK", "eventtrail.delivery.sinks.NoSuchSink"),
    ("STORE", "elasticsaerch"),
    ("PROCESSORS", ["opt_out", "anonymise_ip"]),
    ("USER_ROLES", "community.roles.no_such_function"),
    ("OPT_OUT", "nowhere.at_all"),
    ("MODERATED_COMMUNITIES", "eventtrail.conf.DEFAULTS"),  # not callable
    ("TARGET_LABELS", 42),
])
def test_a_misspelled_pluggable_setting_fails_check_naming_setting_and_value(setting, value):
    with override_settings(EVENTTRAIL={setting: value}):
        errors = check_imports()
        assert [e.id for e in errors] == ["eventtrail.E002"]
        bad = value[-1] if isinstance(value, list) else value
        assert f"EVENTTRAIL[{setting!r}]" in errors[0].msg and repr(bad) in errors[0].msg
        with pytest.raises(SystemCheckError, match=setting):
            call_command("check")
        # What every process runs when the app loads (gunicorn included): the start fails.
        with pytest.raises(ImproperlyConfigured, match=setting):
            conf.validate()


@pytest.mark.parametrize("setting, value, call", [
    ("TARGET_LABELS", "operator.add", "hook(viewer, kind, ids)"),  # an earlier, shorter hook
    ("USER_ROLES", "operator.add", "hook(user)"),
])
def test_a_hook_that_cannot_take_its_arguments_is_refused_at_start_up(setting, value, call):
    with override_settings(EVENTTRAIL={setting: value}):
        (error,) = check_imports()
        assert error.msg.startswith(f"EVENTTRAIL[{setting!r}] = {value!r}: it is called as {call}")
        with pytest.raises(ImproperlyConfigured, match=setting):
            conf.validate()


@pytest.mark.parametrize("setting, value, nearest", [
    ("SINK", "logstash-htpp", "logstash-http"),
    ("STORE", "elasticsaerch", "elasticsearch"),
    ("PROCESSORS", ["anonymise_ip"], "anonymize_ip"),
    ("SINK", "eventtrail.delivery.sinks.JsonLineSink", "eventtrail.delivery.sinks.JsonLinesSink"),
    ("OPT_OUT", "eventtrail.processors.opt_outt", "eventtrail.processors.opt_out"),
])
def test_a_misspelling_names_the_nearest_valid_choice(setting, value, nearest):
    with override_settings(EVENTTRAIL={setting: value}):
        (error,) = check_imports()
    assert error.msg.endswith(f"did you mean {nearest!r}?")


def test_a_misspelled_key_names_the_nearest_key():
    with (override_settings(EVENTTRAIL={"BATCHSIZE": 100}),
          pytest.raises(ImproperlyConfigured, match=r"'BATCHSIZE'.*did you mean 'BATCH_SIZE'")):
        conf.validate()


@pytest.mark.parametrize("command", [
    ["-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:0", "config.wsgi:application"],
    ["-c", "import config.wsgi"],
    ["manage.py", "check"],
    ["manage.py", "migrate", "--check"],
], ids=["gunicorn", "wsgi-import", "check", "any-command"])
def test_a_process_started_with_a_misspelled_sink_exits_naming_it(command, tmp_path):
    """Gunicorn runs no system checks: loading the app refuses to start, naming the setting."""
    env = {**os.environ, "EVENTTRAIL_SINK": "logstash-htpp", "EVENTTRAIL_VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    started = subprocess.run([sys.executable, *command], cwd=APP, env=env, capture_output=True,
                             text=True, timeout=120)
    assert started.returncode != 0
    assert "EVENTTRAIL['SINK'] = 'logstash-htpp'" in started.stderr
    assert "did you mean 'logstash-http'?" in started.stderr


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi"])
def test_the_server_entry_points_freeze_what_start_up_made(module, tmp_path):
    """Start-up's objects live as long as the process: frozen, a full garbage collection (50 ms
    over them here, every few heavy analytics requests) no longer walks them. The URL
    configuration (and the API's libraries it imports) is among them: loaded at start, not by
    a worker's first request (260 ms of it)."""
    env = {**os.environ, "EVENTTRAIL_VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    started = subprocess.run([sys.executable, "-c", f"import gc, sys, {module}; "
                              "print(gc.get_freeze_count(), len(gc.get_objects()), "
                              "len({'config.urls', 'eventtrail.urls', 'rest_framework.serializers', "
                              "'drf_spectacular.views'} - set(sys.modules)))"],
                             cwd=APP, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    frozen, walked, missing = map(int, started.stdout.split())
    assert frozen > 20_000 and walked < frozen / 10
    assert missing == 0


def test_the_shipped_defaults_and_the_demo_settings_pass():
    assert check_imports() == [] and check_values() == []
    with override_settings(EVENTTRAIL={}):
        assert check_imports() == [] and check_values() == []
        call_command("check")


@pytest.mark.parametrize("setting, value, problem", [
    ("BATCH_SIZE", "500", "expected an integer"),
    ("BATCH_SIZE", 0, "must be >= 1"),
    ("QUEUE_SIZE", True, "expected an integer"),
    ("FLUSH_INTERVAL", 0, "must be > 0"),
    ("LOGSTASH_HOSTS", ["htp://127.0.0.1:8080"], "htp"),
    ("LOGSTASH_HOSTS", "http://127.0.0.1:8080", "list"),
    ("ELASTICSEARCH_HOSTS", ["tcp://127.0.0.1:9200"], "tcp"),
    ("SAMPLING", {"page.view": 1.5}, "page.view"),
    ("RETRY_BACKOFF", [], ""),
    ("TRUSTED_PROXIES", ["10.0.0.0/33"], "10.0.0.0/33"),
    ("EXCLUDE_PATHS", ["^/admin/("], "^/admin/("),
    ("API_THROTTLE_RATE", "1200/fortnight", ""),
    ("COLLECT_THROTTLE", {"session": "many"}, "session"),
    ("SINK_OPTIONS", ["topic"], "expected"),
    ("ENABLED", "yes", "expected True or False"),
])
def test_a_wrong_value_fails_check_naming_setting_and_value(setting, value, problem):
    with override_settings(EVENTTRAIL={setting: value}):
        errors = check_values()
        assert [e.id for e in errors] == ["eventtrail.E003"], errors
        assert f"EVENTTRAIL[{setting!r}] = {value!r}" in errors[0].msg
        assert problem in errors[0].msg
        with pytest.raises(ImproperlyConfigured, match=setting):
            conf.validate()


def test_a_secret_is_never_echoed_in_a_message():
    secret = 12345678901234567890
    with override_settings(EVENTTRAIL={"LOGSTASH_PASSWORD": secret, "HASH_KEY": ""}):
        messages = " ".join(e.msg for e in check_values())
    assert "LOGSTASH_PASSWORD" in messages and "HASH_KEY" in messages
    assert str(secret) not in messages and "<hidden>" in messages


def test_every_setting_has_a_value_check_or_is_an_import_string():
    assert set(conf.DEFAULTS) == set(conf.VALUE_CHECKS) | set(conf.IMPORT_STRINGS)
    assert not set(conf.VALUE_CHECKS) & set(conf.IMPORT_STRINGS)


class OptionSink:
    """A third-party sink that takes its settings from SINK_OPTIONS."""

    name = "option-sink"
    built: list[dict] = []

    def __init__(self, topic, *, retries=3):
        OptionSink.built.append({"topic": topic, "retries": retries})
        self.docs = []

    def send(self, docs):
        self.docs.extend(docs)

    def close(self):
        pass


def test_sink_options_reach_the_factory_and_wrong_ones_fail_check():
    path = f"{__name__}.OptionSink"
    with override_settings(EVENTTRAIL={"SINK": path, "SINK_OPTIONS": {"topic": "events",
                                                                       "retries": 5}}):
        assert check_imports() == []
        from eventtrail.delivery import make_sink

        OptionSink.built.clear()
        make_sink()
        assert OptionSink.built == [{"topic": "events", "retries": 5}]
    with override_settings(EVENTTRAIL={"SINK": path, "SINK_OPTIONS": {"topik": "events"}}):
        (error,) = check_imports()
        assert error.id == "eventtrail.E002"
        assert "SINK_OPTIONS" in error.msg and "topik" in error.msg
    with override_settings(EVENTTRAIL={"SINK": "logstash-http", "SINK_OPTIONS": {"x": 1}}):
        (error,) = check_imports()
        assert "'x'" in error.msg


def drafts(n):
    return [draft_for("page.view", {"url.path": f"/p/{i}", "http.response.status_code": 200},
                      remote="198.51.100.1") for i in range(n)]


def wait_until_spooled(handoff, count, seconds=20):
    deadline = time.monotonic() + seconds
    while handoff.spool is None or handoff.spool.count() < count:
        assert time.monotonic() < deadline, "events never reached the spool"
        time.sleep(0.02)


class UnbuildableSink:
    """A sink whose constructor raises until told otherwise (a host that does not resolve)."""

    name = "unbuildable"
    broken = True
    sent: list[str] = []

    def __init__(self):
        if UnbuildableSink.broken:
            raise OSError("name or service not known")

    def send(self, docs):
        UnbuildableSink.sent.extend(docs)

    def close(self):
        pass


@pytest.mark.real_delivery
def test_a_sink_whose_constructor_raises_keeps_every_event_in_the_spool():
    UnbuildableSink.broken, UnbuildableSink.sent = True, []
    with override_settings(EVENTTRAIL={**FAST, "SINK": f"{__name__}.UnbuildableSink"}):
        counters.reset()
        handoff = Handoff(spool=MemorySpool(10_000))  # the sink comes from the setting
        try:
            for draft in drafts(300):
                handoff.put(draft)
            wait_until_spooled(handoff, 300)
            time.sleep(0.3)  # several failed opens
            snapshot = counters.snapshot()
            assert snapshot["counters"]["send_errors"] >= 2
            assert "cannot open the sink" in snapshot["last_error"]
            assert not any(v for k, v in snapshot["counters"].items() if k.startswith("dropped"))
            assert handoff.spool.count() == 300 and UnbuildableSink.sent == []
            handoff.persist()  # what operators read, summed over processes
            out = StringIO()
            call_command("eventtrail_stats", stdout=out)
            assert re.search(r"send_errors +[1-9]", out.getvalue())
            assert re.search(r"last error +sink: cannot open the sink: OSError", out.getvalue())
            UnbuildableSink.broken = False  # the host resolves again
            assert handoff.flush(20)
        finally:
            handoff.stop(timeout=5)
    assert_balanced(handoff)
    ids = [json.loads(doc)["event"]["id"] for doc in UnbuildableSink.sent]
    assert len(ids) == len(set(ids)) == 300


@pytest.mark.real_delivery
def test_a_receiver_down_from_the_start_loses_nothing():
    port = free_port()
    with override_settings(EVENTTRAIL={**FAST, "LOGSTASH_USER": "writer",
                                       "LOGSTASH_PASSWORD": "s3cret"}):
        counters.reset()
        handoff = Handoff(sink=LogstashHttpSink([f"http://127.0.0.1:{port}"]),
                          spool=MemorySpool(10_000))
        try:
            for draft in drafts(500):
                handoff.put(draft)
            wait_until_spooled(handoff, 500)
            snapshot = counters.snapshot()["counters"]
            assert not any(v for k, v in snapshot.items() if k.startswith("dropped"))
            receiver = HttpReceiver(port=port).start()
            try:
                assert receiver.received.wait_for(500, timeout=30)
                assert handoff.flush(10)
            finally:
                receiver.stop()
        finally:
            handoff.stop(timeout=5)
    assert assert_balanced(handoff)["delivered"] == 500
    ids = receiver.received.ids()
    assert len(ids) == len(set(ids)) == 500
    assert counters.snapshot()["counters"]["delivered"] == 500
