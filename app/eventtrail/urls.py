"""URLs served by Event Trail: the query API and the browser collector."""
from django.urls import URLPattern, URLResolver, path

from eventtrail.collect import collect

app_name = "eventtrail"
urlpatterns: list[URLPattern | URLResolver] = [
    path("eventtrail/collect/", collect, name="collect"),
]
