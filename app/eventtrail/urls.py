"""URLs served by Event Trail: the query API, the browser collector and operator stats."""
from django.urls import URLPattern, URLResolver, path

from eventtrail import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("eventtrail/stats/", views.delivery_stats, name="eventtrail-stats"),
]
