"""A tiny URLconf for the collector and browser tests: an article page with the script and a video."""
import base64
from pathlib import Path

from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.template import engines
from django.urls import include, path

PAGE = """{% load eventtrail_tags static %}<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body { font: 16px/1.6 serif; max-width: 40em; margin: 2em auto; }</style>
{% eventtrail_script %}</head>
<body><h1>{{ title }}</h1>
{% if video %}<video id="clip" data-eventtrail-video="demo-clip" muted playsinline preload="auto"
 width="320" height="180" src="{{ video }}"></video>{% endif %}
{% for paragraph in paragraphs %}<p>{{ paragraph }}</p>{% endfor %}
<p id="end">The end.</p></body></html>"""

TEXT = ("Graph theory studies sets of vertices joined by edges; this sentence repeats so the "
        "article is long enough to scroll through in quarters. ") * 4


def video_url():
    """The demo video inline: the test server's static view answers no Range requests, so the
    browser could not seek in a file served by it."""
    data = Path(finders.find("eventtrail/demo/demo.webm")).read_bytes()
    return "data:video/webm;base64," + base64.b64encode(data).decode()


def article(request, community, article):
    template = engines["django"].from_string(PAGE)
    context = {"title": f"Article {article} in {community}", "video": video_url(),
               "paragraphs": [TEXT] * 60}
    return HttpResponse(template.render(context, request))


def plain(request):
    template = engines["django"].from_string(PAGE)
    return HttpResponse(template.render({"title": "Plain page", "paragraphs": ["short"]}, request))


def elsewhere(request):
    return HttpResponse("<!doctype html><title>elsewhere</title><p>another page</p>")


urlpatterns = [
    path("", include("eventtrail.urls")),
    path("c/<slug:community>/articles/<int:article>/", article, name="browser-article"),
    path("plain/", plain, name="browser-plain"),
    path("elsewhere/", elsewhere, name="browser-elsewhere"),
]
