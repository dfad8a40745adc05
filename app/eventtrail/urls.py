"""URLs served by Event Trail: the query API and the browser collector."""
from django.urls import URLPattern, URLResolver

app_name = "eventtrail"
urlpatterns: list[URLPattern | URLResolver] = []
