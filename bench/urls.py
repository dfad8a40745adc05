"""The benchmark's URLs: one minimal view in front of the demo site's own."""
from config.urls import urlpatterns as site_patterns
from django.http import HttpRequest, HttpResponse
from django.urls import path


def minimal(request: HttpRequest) -> HttpResponse:
    """Touches nothing on the request, not even request.user."""
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("bench/minimal/", minimal, name="bench-minimal"), *site_patterns]
