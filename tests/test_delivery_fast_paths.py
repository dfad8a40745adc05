"""The delivery worker's hot paths that the benchmark sped up keep their exact output."""
import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings
from eventtrail import schema
from eventtrail.build import prepare
from eventtrail.capture import draft_for
from eventtrail.delivery.sinks import DeliveryError, LogstashHttpSink
from eventtrail.ids import uuid7


def test_unflatten_nests_schema_and_unknown_names_alike():
    flat = {
        "@timestamp": "2025-01-01T00:00:00.000Z",
        "message": "m",
        "event.id": "1",
        "event.action": "page.view",
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "eventtrail.video.position": 1.5,
        "custom.deep.name": ["x"],
    }
    doc = schema.unflatten(flat)
    assert doc == {
        "@timestamp": "2025-01-01T00:00:00.000Z",
        "message": "m",
        "event": {"id": "1", "action": "page.view"},
        "http": {"request": {"method": "GET"}, "response": {"status_code": 200}},
        "eventtrail": {"video": {"position": 1.5}},
        "custom": {"deep": {"name": ["x"]}},
    }
    assert schema.flatten(doc) == flat
    assert schema.unflatten(flat) == doc  # the cached paths give the same answer again
    private = {**flat, "_user": object(), "_type": "x"}
    assert schema.unflatten(private, public=True) == doc
    assert set(schema.unflatten(private)) == set(doc) | {"_user", "_type"}


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    auth: list[str | None] = []
    statuses: list[int] = []

    def log_message(self, *args):
        return None

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        type(self).auth.append(self.headers.get("Authorization"))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def recorder():
    _Recorder.bodies, _Recorder.auth, _Recorder.statuses = [], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def documents(n):
    return [prepare(draft_for("page.view", {"url.path": f"/c/café/{i}",
                                            "user_agent.original": "Mozilla/5.0"}))[1]
            for i in range(n)]


def test_http_sink_posts_the_documents_byte_for_byte_in_one_request(recorder):
    docs = documents(300)
    with override_settings(EVENTTRAIL={"LOGSTASH_USER": "writer", "LOGSTASH_PASSWORD": "pw"}):
        sink = LogstashHttpSink([f"http://127.0.0.1:{recorder}"])
        sink.send(docs)
        sink.send(docs[:2])
        sink.close()
    # Exactly our serialisation: not parsed and re-encoded (which would escape the é).
    assert _Recorder.bodies == [("[" + ",".join(docs) + "]").encode(),
                                ("[" + ",".join(docs[:2]) + "]").encode()]
    assert "café".encode() in _Recorder.bodies[1]
    assert [json.loads(d) for d in docs] == json.loads(_Recorder.bodies[0])
    expected = "Basic " + base64.b64encode(b"writer:pw").decode()
    assert _Recorder.auth == [expected, expected]


def test_http_sink_raises_on_an_error_status_and_recovers(recorder):
    _Recorder.statuses = [503]
    sink = LogstashHttpSink([f"http://127.0.0.1:{recorder}"])
    docs = documents(3)
    with pytest.raises(DeliveryError, match="HTTP 503"):
        sink.send(docs)
    sink.send(docs)
    sink.close()
    assert len(_Recorder.bodies) == 2 and _Recorder.bodies[0] == _Recorder.bodies[1]


calls = []


def counting_roles(user):
    calls.append(user.pk)
    return ["reviewer"]


@pytest.mark.django_db
def test_the_roles_hook_runs_once_per_user_not_once_per_event(django_user_model):
    from eventtrail.build import clear_caches

    staff = django_user_model.objects.create_user("rita", is_staff=True)
    other = django_user_model.objects.create_user("olaf")
    calls.clear()
    clear_caches()
    with override_settings(EVENTTRAIL={"USER_ROLES": f"{__name__}.counting_roles"}):
        docs = [json.loads(prepare(draft_for("page.view", {"url.path": f"/p/{i}", "_user": user,
                                                           "_user_id": user.pk}))[1])
                for i in range(3) for user in (staff, other)]
        assert [d["user"]["roles"] for d in docs[:2]] == [["staff", "reviewer"], ["reviewer"]]
        assert all(d["user"]["roles"] == docs[i % 2]["user"]["roles"] for i, d in enumerate(docs))
        assert sorted(calls) == sorted([staff.pk, other.pk])
        clear_caches()  # what the TTL does after a minute: the hook is asked again
        prepare(draft_for("page.view", {"url.path": "/p/x", "_user": staff, "_user_id": staff.pk}))
    assert calls.count(staff.pk) == 2


def test_ids_from_the_random_pool_are_distinct_and_well_formed():
    same_ms = [uuid7(ms=1_700_000_000_000) for _ in range(20_000)]
    live = [uuid7() for _ in range(20_000)]
    assert len(set(same_ms)) == len(same_ms) and len(set(live)) == len(live)
    for value in same_ms[:50] + live[:50]:
        assert value[14] == "7" and value[19] in "89ab"


def test_a_forked_child_never_repeats_its_parents_ids():
    uuid7(ms=1)  # the parent's pool now holds unused bytes the child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, ",".join(uuid7(ms=1_700_000_000_000) for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = [uuid7(ms=1_700_000_000_000) for _ in range(50)]
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    assert len(child) == 50
    assert not set(parent) & set(child)


def test_timestamps_are_exact_to_the_millisecond_across_seconds_and_dates():
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from eventtrail.build import _iso

    rng = __import__("random").Random(7)
    samples = [0, 999_999_999, 1_000_000_000, 1_211_793_323_568_999_611,
               253_402_300_799_999_999_999]  # 9999-12-31T23:59:59.999
    samples += [rng.randrange(0, 253_402_300_800 * 10**9) for _ in range(20_000)]
    samples += sorted(rng.randrange(10**18, 10**18 + 5 * 10**9) for _ in range(2_000))  # in order
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for ns in samples:
        ms = int(Decimal(ns) // 1_000_000)  # truncated, never rounded up into the next ms
        expected = (epoch + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
        assert _iso(ns) == expected.replace("+00:00", "Z"), ns


def test_documents_are_the_json_the_stdlib_would_write_and_unencodable_fields_are_invalid():
    draft = draft_for("page.view", {
        "url.path": "/c/x/a/1/", "http.response.status_code": 200,
        "user_agent.original": 'Zoë "quoted" \\ \u2028 \x1f 😀',
        "eventtrail.score": 1.5e16, "labels.counts": {1: "one", "two": [True, None]},
    })
    event_id, text = prepare(draft)
    doc = json.loads(text)
    assert doc["event"]["id"] == event_id
    assert doc["user_agent"]["original"] == 'Zoë "quoted" \\ \u2028 \x1f 😀'
    assert doc["eventtrail"]["score"] == 1.5e16
    assert doc["labels"]["counts"] == {"1": "one", "two": [True, None]}  # keys as the stdlib does
    assert "\n" not in text and ", " not in text.replace('", "', "")  # compact, one line
    assert json.loads(json.dumps(doc, ensure_ascii=False, separators=(",", ":"))) == doc

    from datetime import datetime

    for bad in ("\ud800 a lone surrogate", datetime(2025, 1, 1), 2**70, object()):
        with pytest.raises(TypeError):  # the worker drops it as "invalid" and counts it
            prepare(draft_for("page.view", {"url.path": "/", "labels.bad": bad}))


def test_the_client_address_follows_the_trusted_proxies_in_force():
    from eventtrail.privacy import client_ip

    for _ in range(2):  # the second round answers from the cache: the same answers
        with override_settings(EVENTTRAIL={"TRUSTED_PROXIES": ["10.0.0.0/8"]}):
            assert client_ip("10.1.2.3", "203.0.113.9, 10.9.9.9") == "203.0.113.9"
            assert client_ip("192.0.2.1", "203.0.113.9") == "192.0.2.1"
        with override_settings(EVENTTRAIL={"TRUSTED_PROXIES": []}):
            assert client_ip("10.1.2.3", "203.0.113.9, 10.9.9.9") == "10.1.2.3"
        assert client_ip("not an address", None) is None
        assert client_ip("2001:db8::0:1", None) == "2001:db8::1"
