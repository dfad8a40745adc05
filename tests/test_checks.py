"""Settings and placement fail loudly at start-up, with stable ids."""
from django.core.checks import Error, Warning
from django.test import override_settings
from eventtrail.checks import check_middleware, check_settings
from eventtrail.conf import DEFAULTS, get_config


def test_unknown_key_is_an_error_with_a_stable_id():
    with override_settings(EVENTTRAIL={"SINKK": "jsonl"}):
        assert check_settings() == [
            Error("Unknown key EVENTTRAIL['SINKK']; did you mean 'SINK'?",
                  hint="See eventtrail.conf.DEFAULTS for the settings Event Trail reads.",
                  id="eventtrail.E001")
        ]


def test_known_keys_pass_and_override_settings_resets_the_cache():
    with override_settings(EVENTTRAIL={"SINK": "jsonl"}):
        assert check_settings() == []
        assert get_config()["SINK"] == "jsonl"
    with override_settings(EVENTTRAIL={}):
        assert get_config()["SINK"] == DEFAULTS["SINK"]


def test_middleware_must_be_last(settings):
    path = "eventtrail.middleware.EventTrailMiddleware"
    settings.MIDDLEWARE = [path, "django.contrib.sessions.middleware.SessionMiddleware"]
    (warning,) = check_middleware()
    assert isinstance(warning, Warning) and warning.id == "eventtrail.W002"
    settings.MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
    assert check_middleware()[0].id == "eventtrail.W001"
    settings.MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware", path]
    assert check_middleware() == []
