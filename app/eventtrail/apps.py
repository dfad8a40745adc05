"""Django app config for Event Trail."""
from django.apps import AppConfig


class EventTrailConfig(AppConfig):
    name = "eventtrail"
    verbose_name = "Event Trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from eventtrail import checks, conf, signals  # noqa: F401  (receivers and checks)

        signals.install()
        # Like admin.py: every installed app may declare its types in event_types.py.
        autodiscover_modules("event_types")
        # Gunicorn, uvicorn and task workers run no system checks: a misspelled setting stops
        # every process here, naming the setting, rather than failing later and silently.
        conf.validate()
