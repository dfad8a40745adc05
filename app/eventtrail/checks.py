"""System checks: misspelled settings, wrong values and a misplaced middleware, each with a
stable id. The app runs the same checks when it loads (``EventTrailConfig.ready``), so a process
that runs no system checks (gunicorn, a worker) still refuses to start; these report the settings
a test changes afterwards with ``override_settings``."""
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from eventtrail.conf import import_problems, unknown_key_problems, value_problems

MIDDLEWARE_PATH = "eventtrail.middleware.EventTrailMiddleware"


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            problem,
            hint="See eventtrail.conf.DEFAULTS for the settings Event Trail reads.",
            id="eventtrail.E001",
        )
        for problem in unknown_key_problems()
    ]


@register(Tags.compatibility)
def check_imports(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(problem, hint="Use a built-in short name or the dotted path of a callable.",
              id="eventtrail.E002")
        for problem in import_problems()
    ]


@register(Tags.compatibility)
def check_values(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(problem, hint="See eventtrail.conf.DEFAULTS for each setting's type and meaning.",
              id="eventtrail.E003")
        for problem in value_problems()
    ]


@register(Tags.compatibility)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", []))
    if MIDDLEWARE_PATH not in middleware:
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE, so no request is recorded.",
                hint="Add it as the last entry of MIDDLEWARE.",
                id="eventtrail.W001",
            )
        ]
    if middleware[-1] != MIDDLEWARE_PATH:
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not the last entry of MIDDLEWARE.",
                hint="Move it last so it sees the request as every other middleware left it "
                "and records the final status.",
                id="eventtrail.W002",
            )
        ]
    return []
