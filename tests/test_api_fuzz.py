"""Schemathesis against the served OpenAPI schema: generated requests never get a 5xx."""
from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.test_api_contract import documents, es_data, store  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(databases=["default", "events"])
EXAMPLES = 40


@pytest.mark.usefixtures("store")
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(mode):
    token, _ = Token.objects.get_or_create(user=User.objects.get(username="staff"))
    headers = {"Authorization": f"Token {token.key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    seen: list[int] = []
    for path in ("/api/events/", "/api/events/aggregate/"):
        operation = schema[path]["GET"]

        @given(case=operation.as_strategy(generation_mode=mode))
        @hsettings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(headers=headers)
            seen.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        run()
    assert seen and max(seen) < 500
    if mode is GenerationMode.POSITIVE:
        assert seen.count(200) >= EXAMPLES // 4
    assert 400 in seen
