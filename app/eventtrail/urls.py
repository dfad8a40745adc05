"""URLs served by Event Trail: the query API, the browser collector and operator stats."""
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from eventtrail import views
from eventtrail.api.views import EventAggregateView, EventListView
from eventtrail.collect import collect

app_name = "eventtrail"
urlpatterns: list[URLPattern | URLResolver] = [
    path("api/events/", EventListView.as_view(), name="events"),
    path("api/events/aggregate/", EventAggregateView.as_view(), name="events-aggregate"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="eventtrail:schema"), name="docs"),
    path("eventtrail/collect/", collect, name="collect"),
    path("eventtrail/stats/", views.delivery_stats, name="stats"),
]
