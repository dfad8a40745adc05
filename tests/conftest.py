"""Shared fixtures for the whole suite."""
import pytest

pytest_plugins = ["tests.engine_fixture"]


@pytest.fixture(autouse=True, scope="session")
def _delivery_in_a_temporary_place(tmp_path_factory):
    """Tests never write to the repo's var/, and the worker is stopped while logging works."""
    from django.conf import settings
    from eventtrail import delivery
    from eventtrail.conf import get_config

    spool = tmp_path_factory.mktemp("spool")
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "SPOOL": False, "SPOOL_DIR": str(spool),
                           "JSONL_PATH": str(spool / "events.jsonl")}
    get_config.cache_clear()
    yield
    delivery.shutdown(timeout=2)
