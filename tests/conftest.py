"""Shared fixtures for the whole suite."""
import pytest

pytest_plugins = ["tests.support.engine_fixture", "tests.support.analytics_fixtures"]


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
    from eventtrail.build import clear_caches, prepare

    clear_caches()
    with delivery.redirected(lambda draft: prepare(draft) and None):
        yield


# Debian's Chromium, headless, as root; never a browser Playwright downloads. The networking
# flags keep it from calling home on a machine with no internet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def chromium(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM reads are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
