"""WSGI entry point for gunicorn."""
import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# What start-up made (Django, the apps, the libraries: about 55,000 objects at import, twice
# that once serving) lives as long as the process. Frozen, Python's full garbage collections
# leave it out: one took 46-50 ms here, and came every few analytics requests that read large
# answers (a 50-minute series' 30,000 user pairs), the slowest of their requests by 100 ms or
# more; frozen, 3-8 ms. (Python's documentation recommends it for long-lived servers.)
gc.freeze()
