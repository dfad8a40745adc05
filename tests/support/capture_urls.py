"""A tiny URLconf for capture tests, independent of the demo site."""
from django.contrib.auth import authenticate, login, logout
from django.http import HttpResponse, JsonResponse
from django.urls import include, path


class Boom(Exception):
    pass


def ok(request, **kwargs):
    return HttpResponse("ok")


def whoami(request):
    return HttpResponse(request.user.get_username() or "anonymous")


def boom(request):
    raise Boom("the view failed")


def do_login(request):
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("no", status=200)
    login(request, user)
    return HttpResponse("yes")


def do_logout(request):
    logout(request)
    return HttpResponse("bye")


def echo(request):
    return JsonResponse({"n": len(request.body)})


urlpatterns = [
    path("ok/", ok, name="ok"),
    path("whoami/", whoami, name="whoami"),
    path("boom/", boom, name="boom"),
    path("echo/", echo, name="echo"),
    path("things/<slug:community>/<int:thing>/", ok, name="thing-detail"),
    path("find/", ok, name="thing-search"),
    path("static/app.css", ok, name="static-file"),
    path("health/", ok, name="health"),
    path("login/", do_login, name="do-login"),
    path("logout/", do_logout, name="do-logout"),
    # The demo's 404 page links to its pages; keep them resolvable (not recorded here).
    path("accounts/", include("django.contrib.auth.urls")),
    path("site/", include("community.urls")),
]
