"""URLs served by Event Trail: the query API, the browser collector and operator stats."""
from django.urls import URLPattern, URLResolver, path

from eventtrail import views
from eventtrail.collect import collect

app_name = "eventtrail"
urlpatterns: list[URLPattern | URLResolver] = [
    path("eventtrail/collect/", collect, name="collect"),
    path("eventtrail/stats/", views.delivery_stats, name="stats"),
]
