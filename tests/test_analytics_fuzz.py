"""Every parameter of every analytics endpoint, the event API and the pages' JSON, fed hostile
values on every store: each answer is a 200 (or a 403 for a subject the caller may not see) or a
400 whose error names that parameter, never a 5xx."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from eventtrail.analytics.api import AnalyticsView
from eventtrail.analytics.params import COMMON
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.support import analytics_data as data

pytestmark = pytest.mark.django_db(databases=["default", "events"])

# What a typo, a script or an attacker sends: empty, signs and overflow, float spellings, NUL and
# control characters, paths, directories of the zone database, far dates, odd units, huge text.
HOSTILE = [
    "", " ", "x", "0", "-1", "1.5", "1e309", "nan", "-inf", "9" * 40, "0x10", "\x00", "\x1b[31m",
    "../../etc/passwd", "America", "Etc", "Etc/GMT+14", "Europe/Paris", "UTC", "💥", "null",
    "[]", "now-100000y", "now+1000d/d", "now/q", "0001-01-01", "9999-12-31T23:59:59Z",
    "2024-02-30", "10000-01-01", "1970-01-01T00:00:00+25:00", "0h", "-1h", "999999999d", "1m",
    "week", "fortnight", "a" * 5000,
]


def _endpoints(base: type) -> dict[str, frozenset[str]]:
    found = {}
    for cls in base.__subclasses__():
        if "name" in cls.__dict__:
            found[cls.name] = cls.params | COMMON
        found.update(_endpoints(cls))
    return found


ANALYTICS = _endpoints(AnalyticsView)
REQUIRED = {"also-read": {"article": data.SEED_ARTICLE}, "trending": {"community": data.CRAFT}}
STORE_PARAMS = {"community", "user", "article"}  # the values that reach the store as they are


def api(path: str, params: dict[str, str]):
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(username="analyst"))
    return client.get(f"{path}?{urlencode(params)}")


def check(response, param: str, base: dict[str, str] | None = None) -> None:
    """A 200, a 403, or a 400 naming ``param`` (or, when ``param`` replaced one of the ``base``
    parameters the request needs, naming what is missing)."""
    body = response.content[:300]
    names = {param, param.replace("\x00", "\\x00")}
    replaced = bool(base and param in base)  # a needed parameter spoiled: any one may be named
    assert response.status_code in {200, 400, 403}, (param, response.status_code, body)
    if response.status_code == 400:
        errors = response.json()["errors"]
        assert errors and (replaced or errors[0]["param"] in names), body
        assert errors[0]["message"], body


def test_every_analytics_endpoint_is_in_the_fuzz():
    assert len(ANALYTICS) == 14


@pytest.mark.parametrize("name", sorted(ANALYTICS))
def test_analytics_parameters(store, name):
    base = REQUIRED.get(name, {})
    values = HOSTILE if store == "database" else HOSTILE[::3]
    for param in sorted(ANALYTICS[name] | {"colour"}):
        for value in values:
            check(api(f"/api/analytics/{name}/", {**base, param: value}), param, base)
        # A parameter given twice is a 400 naming it, not a silent pick of one.
        check(api(f"/api/analytics/{name}/", {**base, param: ["1", "2"]}), param, base)


@pytest.mark.parametrize("path,base", [
    ("/api/events/", {}),
    ("/api/events/aggregate/", {"group_by": "event.action"}),
    ("/api/events/aggregate/", {"interval": "day"}),
])
def test_event_api_parameters(store, path, base):
    params = ["from", "to", "tz", "interval", "size", "page_size", "page", "cursor", "sort",
              "fields", "q", "include_bots", "group_by", "metric", "mode", "after",
              "event.action", "user.id", "http.response.status_code", "@timestamp__gte",
              "event.duration__lt", "source.ip", "colour"]
    values = HOSTILE if store == "database" else HOSTILE[::3]
    for param in params:
        for value in values:
            check(api(path, {**base, param: value}), param, base)


@pytest.mark.parametrize("page", ["/analytics/me/data.json", "/analytics/site/data.json",
                                  f"/analytics/c/{data.CRAFT}/data.json"])
def test_page_parameters(store, page):
    client = Client()
    client.force_login(get_user_model().objects.get(username="analyst"))
    for param in ("period", "user", "colour"):
        for value in HOSTILE if store == "database" else HOSTILE[::3]:
            response = client.get(f"{page}?{urlencode({param: value})}")
            assert response.status_code < 500, (param, value, response.content[:300])


@pytest.mark.parametrize("name", sorted(ANALYTICS))
def test_generated_values(history, settings, name):
    """Hypothesis on the database store: any text in any one parameter of each endpoint."""
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "STORE": "database",
                           "API_THROTTLE_RATE": "100000/min"}
    names = sorted(ANALYTICS[name])

    @given(param=st.sampled_from(names), value=st.text(max_size=40))
    @hsettings(max_examples=60, deadline=None, database=None, derandomize=True,
               suppress_health_check=list(HealthCheck))
    def run(param, value):
        base = REQUIRED.get(name, {})
        check(api(f"/api/analytics/{name}/", {**base, param: value}), param, base)

    run()
