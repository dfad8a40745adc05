"""URLs of the demo site: the community pages plus Event Trail's API and collector."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("eventtrail.urls")),
    path("", include("community.urls")),
]
