"""URLs served by Event Trail: the query API, the browser collector and operator stats."""
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from eventtrail import views
from eventtrail.analytics import api as analytics_api
from eventtrail.analytics import pages as analytics_pages
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
    *[path(f"api/analytics/{view.name}/", view.as_view(), name=f"analytics-{view.name}")
      for view in analytics_api.VIEWS],
    path("analytics/me/", analytics_pages.my_activity, name="analytics-me"),
    path("analytics/me/data.json", analytics_pages.my_activity_data, name="analytics-me-data"),
    path("analytics/c/<slug:slug>/", analytics_pages.community, name="analytics-community"),
    path("analytics/c/<slug:slug>/data.json", analytics_pages.community_data,
         name="analytics-community-data"),
    path("analytics/site/", analytics_pages.site, name="analytics-site"),
    path("analytics/site/data.json", analytics_pages.site_data, name="analytics-site-data"),
]
