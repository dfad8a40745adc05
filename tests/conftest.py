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


@pytest.fixture(autouse=True)
def _events_built_in_the_test_thread(request):
    """Events a test does not capture are still built (so building bugs fail loudly), in the
    test's own thread where its database is reachable, then discarded.

    Tests of the real hand-off mark themselves ``real_delivery``.
    """
    if request.node.get_closest_marker("real_delivery"):
        yield
        return

    from eventtrail import delivery
    from eventtrail.capture import clear_caches

    clear_caches()
    previous = delivery._override
    delivery._override = lambda draft: delivery.prepare(draft) and None
    try:
        yield
    finally:
        delivery._override = previous
