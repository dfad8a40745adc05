"""ASGI entry point."""
import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()
gc.freeze()  # start-up's objects out of every full collection, as in config/wsgi.py
