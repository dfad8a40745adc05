"""The engine's series keep their settled buckets (ElasticsearchStore._settled): the same numbers
as asking the whole period, in any zone and interval, and a late event reaches them."""
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from eventtrail.analytics import compute
from eventtrail.build import prepare
from eventtrail.capture import draft_for
from eventtrail.stores import elasticsearch, get_store
from eventtrail.stores.base import answering, bucket_start, epoch_ms
from eventtrail.stores.query import Where, parse_interval

STREAM = "logs-eventtrail-settledtest"
pytestmark = pytest.mark.engine  # both engines, asked for by name (see ``running``)


@pytest.fixture(params=["engine", "elasticsearch_engine"])
def running(request):
    return request.getfixturevalue(request.param)


def document(moment: datetime, user: str | None, action: str = "article.view",
             target: str = "1", name: str | None = None) -> dict:
    fields = {"eventtrail.community.slug": "c", "eventtrail.target.type": "article",
              "eventtrail.target.id": target, "http.response.status_code": 200}
    if user is not None:
        fields["user.id"] = user
    if name is not None:
        fields["user.name"] = name
    prepared = prepare(draft_for(action, fields))
    assert prepared is not None
    doc = json.loads(prepared[1])
    doc["@timestamp"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return doc


@pytest.fixture
def site(running, settings):
    """Ten days of events up to now, in a data stream of their own."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    docs = []
    for _ in range(600):
        user = rng.choice([f"u{rng.randrange(9)}"] * 5 + [None])  # a sixth anonymous
        docs.append(document(now - timedelta(seconds=rng.randrange(10 * 86400)), user,
                             rng.choice(["article.view", "article.edit"]), str(rng.randrange(5)),
                             name=f"{user}-{rng.choice('ab')}" if user else None))
    running.load_stream(STREAM, docs, template="eventtrail-settledtest", priority=779)
    settings.EVENTTRAIL = {**settings.EVENTTRAIL, "STORE": "elasticsearch",
                           "ELASTICSEARCH_HOSTS": [running.url], "DATA_STREAM": STREAM,
                           "ELASTICSEARCH_OPTIONS": {"node_class": running.node_class}}
    try:
        yield running, docs
    finally:
        running.client.options(ignore_status=(404, 405)).indices.delete_data_stream(name=STREAM)
        running.client.options(ignore_status=404).indices.delete(index=STREAM)


def spied(monkeypatch, name):
    """The arguments (after the store) of every call of ``ElasticsearchStore.<name>``, which
    still runs."""
    calls = []
    real = getattr(elasticsearch.ElasticsearchStore, name)

    def spy(self, *args):
        calls.append(args)
        return real(self, *args)

    monkeypatch.setattr(elasticsearch.ElasticsearchStore, name, spy)
    return calls


def expected(docs, start, interval, tz):
    """Per (action, bucket start) and per (user, bucket start): plain Python."""
    events, pairs = Counter(), set()
    for doc in docs:
        moment = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        if moment < start:
            continue
        bucket = epoch_ms(bucket_start(moment, interval, tz))
        events[(doc["event"]["action"], bucket)] += 1
        if "user" in doc:
            pairs.add((doc["user"]["id"], bucket))
    return dict(events), pairs


def test_kept_buckets_give_the_whole_period_s_numbers(site):
    """Random windows (from a bucket start or not), intervals and zones across the settled and
    current buckets: asked three times (whole, in parts, from what was kept), the numbers of a
    scan."""
    _, docs = site
    store = get_store()
    rng = random.Random(11)
    now = datetime.now(UTC)
    for interval, tz in [("day", "UTC"), ("day", "Asia/Kathmandu"), ("50m", "UTC"),
                         ("hour", "America/St_Johns"), ("week", "Europe/Paris"), ("7m", "UTC")]:
        unit = parse_interval(interval)
        for _ in range(2):
            start = now - timedelta(seconds=rng.randrange(3600, 9 * 86400))
            if rng.random() < 0.5:
                start = bucket_start(start, unit, tz)
            where = Where(start=start)
            events, pairs = expected(docs, start, unit, tz)
            for _ in range(3):
                assert store.counts(where, "event.action", unit, tz) == events, (interval, tz)
                assert store.active_pairs(where, unit, tz) == pairs, (interval, tz)


def test_a_late_event_reaches_the_kept_buckets(site, monkeypatch):
    running, docs = site
    store = get_store()
    unit = parse_interval("day")
    today = bucket_start(datetime.now(UTC), unit, "UTC")
    where = Where(start=today - timedelta(days=6))
    calls = spied(monkeypatch, "_series_asked")

    def asked():
        return [(w.start, w.end) for w, *_ in calls]

    events, pairs = expected(docs, where.start, unit, "UTC")
    assert store.active_pairs(where, unit, "UTC") == pairs
    assert asked() == [(where.start, None)]  # the first time whole
    calls.clear()
    assert store.active_pairs(where, unit, "UTC") == pairs
    assert asked() == [(where.start, today), (today, None)]
    calls.clear()
    assert store.active_pairs(where, unit, "UTC") == pairs
    assert asked() == [(today, None)]  # the six settled days were kept
    # One arrives now, stamped three days ago (delivered late, after an outage).
    late = document(today - timedelta(days=3) + timedelta(hours=5), "late")
    running.client.index(index=STREAM, document=late, op_type="create", refresh=True)
    calls.clear()
    assert store.active_pairs(where, unit, "UTC") == pairs | {
        ("late", epoch_ms(today - timedelta(days=3)))}
    assert asked() == [(where.start, today), (today, None)]
    assert store.counts(where, "event.action", unit, "UTC") == expected(
        [*docs, late], where.start, unit, "UTC")[0]


def test_what_is_kept_is_bounded(site, monkeypatch):
    """At most KEPT_ANSWERS answers, KEPT_KEYS keys in all, the least recently used dropped."""
    monkeypatch.setattr(elasticsearch, "KEPT_ANSWERS", 3)
    store = get_store()
    unit = parse_interval("hour")
    now = bucket_start(datetime.now(UTC), unit, "UTC")
    for days in range(1, 8):
        for _ in range(2):  # kept from the second time
            store.counts(Where(start=now - timedelta(days=days)), None, unit, "UTC")
    assert [key[-1].start for key in store._kept] == [now - timedelta(days=d) for d in (5, 6, 7)]
    sizes = [len(answer) for _, answer, _ in store._kept.values()]
    monkeypatch.setattr(elasticsearch, "KEPT_KEYS", sizes[-1] + sizes[-2])
    store.counts(Where(start=now - timedelta(days=7)), None, unit, "UTC")  # kept: no change
    store.counts(Where(start=now - timedelta(days=2)), None, unit, "UTC")  # asked before
    held = [len(answer) for _, answer, _ in store._kept.values()]
    assert len(held) >= 1 and sum(held) <= sizes[-1] + sizes[-2]
    assert list(store._kept)[-1][-1].start == now - timedelta(days=2)


def test_users_are_the_first_in_key_order_however_many_are_asked(site, monkeypatch):
    """``users`` by a terms aggregation ordered by key, or by composite pages past MAX_KEYS:
    the same first ones either way."""
    _, docs = site
    store = get_store()
    start = datetime.now(UTC) - timedelta(days=4)
    where = Where(start=start)
    everyone = sorted({d["user"]["id"] for d in docs if "user" in d
                       and datetime.fromisoformat(d["@timestamp"].replace("Z", "+00:00")) >= start})
    assert len(everyone) > 3
    for limit in (0, 1, 3, len(everyone), 50):
        assert store.users(where, limit=limit) == everyone[:limit]
    monkeypatch.setattr(elasticsearch, "MAX_KEYS", 2)  # composite pages from here
    for limit in (3, 50):
        assert store.users(where, limit=limit) == everyone[:limit]


def daily(docs, start, keys):
    """Per target, per UTC day: (events, distinct users), in plain Python."""
    events, users = Counter(), {}
    for doc in docs:
        moment = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        target = doc["eventtrail"]["target"]["id"]
        if moment < start or target not in keys:
            continue
        day = epoch_ms(bucket_start(moment, parse_interval("day"), "UTC"))
        events[(target, day)] += 1
        users.setdefault((target, day), set()).update([doc["user"]["id"]] if "user" in doc else [])
    out: dict = {}
    for (target, day), n in events.items():
        out.setdefault(target, {})[day] = (n, len(users[(target, day)]))
    return out


def test_daily_tallies_keep_their_settled_days(site):
    """Trending's per-day tallies in parts too: from a moment inside a day, asked three times, then
    after a late event, each time a scan's numbers."""
    running, docs = site
    store = get_store()
    start = datetime.now(UTC) - timedelta(days=5, hours=7)
    keys = ["0", "1", "2", "3", "9"]
    where = Where(start=start)
    for _ in range(3):
        assert store.daily_tally(where, "eventtrail.target.id", keys) == daily(docs, start, keys)
    late = document(start + timedelta(days=2), "late", target="2")
    running.client.index(index=STREAM, document=late, op_type="create", refresh=True)
    assert store.daily_tally(where, "eventtrail.target.id", keys) == daily([*docs, late], start,
                                                                           keys)


def moment_of(doc):
    return datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))


def tallied(docs, start):
    """Per target from ``start``: (key, events, distinct users), most events first, in plain
    Python; and per user (user, greatest name, events)."""
    events, users, acts, names = Counter(), {}, Counter(), {}
    for doc in docs:
        if moment_of(doc) < start:
            continue
        target = doc["eventtrail"]["target"]["id"]
        events[target] += 1
        users.setdefault(target, set())
        if "user" in doc:
            user = doc["user"]["id"]
            users[target].add(user)
            acts[user] += 1
            names[user] = max(names.get(user, ""), doc["user"]["name"])
    targets = sorted(events, key=lambda k: (-events[k], k))
    members = sorted(acts, key=lambda u: (-acts[u], u))
    return ([(k, events[k], len(users[k])) for k in targets],
            [(u, names[u], acts[u]) for u in members])


def test_tallies_and_top_members_keep_their_settled_days(site):
    """Month-long tallies (most viewed with distinct readers, top members with their names)
    kept by UTC day when the period holds at least PARTS_FROM_DAYS settled days: from a day's
    start or inside a day, asked three times, then after a late event, each time a scan's numbers;
    a shorter period is asked whole and gives them too."""
    running, docs = site
    store = get_store()
    now = datetime.now(UTC)
    today = bucket_start(now, parse_interval("day"), "UTC")
    late = document(today - timedelta(days=4, hours=-3), "u8", target="4", name="u8-z")
    starts = [today - timedelta(days=8), now - timedelta(days=9, hours=5),
              now - timedelta(days=3)]
    for added in ([], [late]):
        if added:
            running.client.index(index=STREAM, document=late, op_type="create", refresh=True)
        for start in starts:
            targets, members = tallied([*docs, *added], start)
            where = Where(start=start)
            for _ in range(3):
                found = store.tally(where, "eventtrail.target.id", size=3)
                assert [(t.key, t.events, t.users) for t in found] == targets[:3], start
                assert store.top_users(where, 4) == members[:4], start
    questions = {key[0] for key in store._kept}
    assert {"tally", "members"} <= questions


def test_a_tally_too_large_to_keep_is_asked_whole(site, monkeypatch):
    """Past PAIR_PAGES pages of pairs (or MAX_KEYS members) a part is not kept: the period is
    asked whole, the same numbers, and not tried in parts again for a while."""
    _, docs = site
    monkeypatch.setattr(elasticsearch, "PAGE", 4)
    monkeypatch.setattr(elasticsearch, "PAIR_PAGES", 2)
    monkeypatch.setattr(elasticsearch, "MAX_KEYS", 3)
    store = get_store()
    start = bucket_start(datetime.now(UTC), parse_interval("day"), "UTC") - timedelta(days=9)
    targets, members = tallied(docs, start)
    tried = spied(monkeypatch, "_pairs")
    for _ in range(2):
        found = store.tally(Where(start=start), "eventtrail.target.id", size=5)
        assert [(t.key, t.events, t.users) for t in found] == targets[:5]
        assert store.top_users(Where(start=start), 2) == members[:2]
    assert len(tried) == 1 and not store._kept


def test_what_else_is_kept_gives_a_scan_s_numbers(site):
    """Reading depth's split tally, users in key order and their count (30 settled days or
    all of retention), the events before a period (new versus returning) and a poll's
    freshness: each asked three times (whole, in parts, from what was kept), then again after a
    late event, each time a scan's numbers."""
    running, docs = site
    store = get_store()
    now = datetime.now(UTC)
    today = bucket_start(now, parse_interval("day"), "UTC")
    late = [document(today - timedelta(days=5, hours=-2), "u9", action="article.edit",
                     target="3", name="u9-a"),
            document(today - timedelta(days=11), "u0", target="7", name="u0-a")]  # earliest
    for added in ([], late):
        for doc in added:
            running.client.index(index=STREAM, document=doc, op_type="create", refresh=True)
        every = [*docs, *added]
        for start in (today - timedelta(days=8), now - timedelta(days=9, hours=3), None):
            where = Where(start=start)
            chosen = [d for d in every if start is None or moment_of(d) >= start]
            split = {}
            for d in chosen:
                key = d["eventtrail"]["target"]["id"]
                if key in ("1", "3", "7"):
                    by = split.setdefault(key, {})
                    by[d["event"]["action"]] = by.get(d["event"]["action"], 0) + 1
            everyone = sorted({d["user"]["id"] for d in chosen if "user" in d})
            for _ in range(3):
                assert store.split_tally(where, "eventtrail.target.id", ["1", "3", "7"],
                                         "event.action", ["article.view", "article.edit"]) \
                    == split, start
                assert store.users(where, limit=4) == everyone[:4], start
                assert store.count_users(where) == len(everyone), start
                assert store.freshness(where) == (
                    len(chosen), max(moment_of(d) for d in chosen)), start
        before = Where(end=today - timedelta(days=2))
        first = {}
        for d in every:
            if "user" in d and moment_of(d) < before.end:
                first[d["user"]["id"]] = min(first.get(d["user"]["id"], moment_of(d)),
                                             moment_of(d))
        for _ in range(3):
            assert store.first_seen(before, sorted(first)) == first
    kept = {key[0] for key in store._kept}
    assert {"split", "users", "everyone", "freshness", "first"} <= kept


def test_one_request_s_questions_share_their_counts(site, monkeypatch):
    """Inside one answer (``answering``) the settled events of the same bounds are counted once,
    whichever thread asks; the next answer counts again and sees a late event."""
    running, docs = site
    store = get_store()
    unit = parse_interval("day")
    today = bucket_start(datetime.now(UTC), unit, "UTC")
    where = Where(start=today - timedelta(days=8))
    counted = spied(monkeypatch, "_count_between")

    def ask():
        questions = {"events": lambda: store.counts(where, "event.action", unit, "UTC"),
                     "pairs": lambda: store.active_pairs(where, unit, "UTC"),
                     "members": lambda: store.top_users(where, 3),
                     "tally": lambda: store.tally(where, "eventtrail.target.id", size=3)}
        return compute.gather(store, questions)  # at once, as a page's panels

    for _ in range(2):  # the parts built (a question is asked whole the first time)
        ask()
    counted.clear()
    ask()
    assert len(counted) == 4 and len(set(counted)) == 1  # each question its own count
    counted.clear()
    with answering():
        before = ask()
    assert counted == [(where.start, today)]
    late = document(today - timedelta(days=3), "u7", action="article.edit", name="u7-z")
    running.client.index(index=STREAM, document=late, op_type="create", refresh=True)
    counted.clear()
    with answering():
        after = ask()
    assert counted == [(where.start, today)]
    assert after["events"] == expected([*docs, late], where.start, unit, "UTC")[0]
    assert after["events"] != before["events"]
    targets, members = tallied([*docs, late], where.start)
    assert after["members"] == members[:3]
