"""Django app config for Event Trail."""
from django.apps import AppConfig


class EventTrailConfig(AppConfig):
    name = "eventtrail"
    verbose_name = "Event Trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from eventtrail import checks, conf  # noqa: F401  (connect receivers and checks)
