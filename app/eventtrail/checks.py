"""System checks: misspelled settings fail loudly at start-up."""
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

from eventtrail.conf import unknown_keys


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            f"Unknown key EVENTTRAIL[{key!r}].",
            hint="See eventtrail.conf.DEFAULTS for the settings Event Trail reads.",
            id="eventtrail.E001",
        )
        for key in unknown_keys()
    ]
