"""generate_activity: deterministic history, consistent with the site, written through the sink."""
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import eventtrail
import pytest
from community.activity import Generator, load_site
from community.models import Article
from community.seed import seed
from django.core.management import call_command
from eventtrail import schema
from eventtrail.build import prepare
from eventtrail.models import StoredEvent

pytestmark = pytest.mark.django_db(databases=["default", "events"])
UNTIL = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def site():
    with eventtrail.suppressed():
        seed()
    return load_site(random.Random(1))


def docs(site, events=3000, seed_value=1):
    generator = Generator(site, days=30, events=events, seed=seed_value, until=UNTIL)
    import json

    return [json.loads(prepare(d)[1]) for d in generator.drafts()]


def test_same_seed_same_history_and_every_document_is_valid(site):
    first, second = docs(site), docs(site)
    assert first == second
    assert len(first) == 3000
    assert docs(site, seed_value=2) != first
    for doc in first:
        assert schema.errors(doc) == []


def test_content_history_replays_to_the_site_states(site):
    state = {}
    for doc in sorted(docs(site), key=lambda d: d["@timestamp"]):
        flat = schema.flatten(doc)
        if flat["event.action"] == "article.create":
            state[flat["eventtrail.target.id"]] = flat["eventtrail.target.state"]
        elif flat["event.action"] == "article.state_change":
            article = flat["eventtrail.target.id"]
            assert state[article] == flat["eventtrail.target.previous_state"]
            state[article] = flat["eventtrail.target.state"]
    assert state == {str(a.pk): a.state for a in Article.objects.all()}


def test_the_shape_is_realistic(site):
    history = [schema.flatten(d) for d in docs(site, events=20000)]
    actions = Counter(e["event.action"] for e in history)
    assert actions["article.view"] > actions["community.view"] > actions["article.search"]
    assert actions["user.login_failed"] > 0 and actions["community.join"] > 0
    users = Counter(e["user.id"] for e in history if "user.id" in e)
    assert users.most_common(1)[0][1] > 5 * (sum(users.values()) / len(users)) / 5  # skewed
    returning = [u for u, n in users.items() if n > 10]
    assert len(returning) > 10
    # Rising articles: in the last 3 days they gain share.
    views = [e for e in history if e["event.action"] == "article.view"]
    late = Counter(e["eventtrail.target.id"] for e in views if e["@timestamp"] >= "2026-10-29")
    early = Counter(e["eventtrail.target.id"] for e in views if e["@timestamp"] < "2026-10-20")
    top_late = late.most_common(1)[0][0]
    assert late[top_late] / sum(late.values()) > 2 * early[top_late] / sum(early.values())
    assert any(e.get("eventtrail.bot") is None and "bot" in e.get("user_agent.original", "").lower()
               for e in history)


def test_the_command_writes_through_the_database_sink_once(site, capsys):
    call_command("generate_activity", "--events", "2000", "--until", "2026-11-01T00:00:00+00:00")
    assert StoredEvent.objects.count() == 2000
    call_command("generate_activity", "--events", "2000", "--until", "2026-11-01T00:00:00+00:00")
    assert StoredEvent.objects.count() == 2000  # same ids: nothing twice
    call_command("generate_activity", "--events", "2000", "--if-empty")
    assert "skipping" in capsys.readouterr().out
    assert StoredEvent.objects.filter(is_bot=True).exists()
    view = StoredEvent.objects.filter(action="article.view", is_bot=False).first()
    assert view.document["user_agent"]["name"] and view.document["event"]["ingested"]


def test_edits_happen_within_the_period_not_when_the_demo_was_seeded(site):
    # UNTIL is in the past: anything stamped later is the seed's own time, leaking into history.
    edits = [d for d in docs(site) if d["event"]["action"] == "article.edit"]
    assert edits and len(edits) == len(site.revisions)
    created = {str(a.pk): a.created_at for a in site.articles}
    for doc in edits:
        at = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        born = created[doc["eventtrail"]["target"]["id"]]
        # Within the period, or within the hour after an article written after it.
        assert born <= at <= max(UNTIL, born + timedelta(hours=1)), doc["@timestamp"]


def test_nothing_is_stamped_after_the_end_of_the_period(site):
    # The bench and the demo end their history "now", just after seeding the site: articles
    # written seconds before it change state and get edited before it too, and a session begun
    # just before it stops there. A live site has no events from the future (and "now" reads
    # today's rollups only when nothing lies later today).
    until = datetime.now(UTC)
    generator = Generator(site, days=1, events=30000, seed=1, until=until)  # busy: it crosses
    stamps = [d.ts for d in generator.drafts()]
    end = int(until.timestamp() * 1_000_000_000)
    assert len(stamps) == 30000 and max(stamps) < end
    assert max(stamps) > end - 3600 * 1_000_000_000  # yet it runs up to the end
