"""What a server process does once the application is built, before its first request."""
import gc
from importlib import import_module

from django.conf import settings


def ready_to_serve() -> None:
    """Start-up's work done at start, and what it made frozen.

    The URL configuration is imported here rather than by the worker's first request: with it
    come the API's libraries (Django REST framework, drf-spectacular), 260 ms of a first
    analytics request at 1M events. Gunicorn's workers each pay it once, before they accept.

    What start-up made (Django, the apps, the libraries: about 55,000 objects at import, twice
    that once serving) lives as long as the process. Frozen, Python's full garbage collections
    leave it out: one took 46-50 ms here, and came every few analytics requests that read large
    answers (a 50-minute series' 30,000 user pairs), the slowest of their requests by 100 ms or
    more; frozen, 3-8 ms. (Python's documentation recommends it for long-lived servers.)"""
    import_module(settings.ROOT_URLCONF)
    gc.freeze()
