"""Privacy options, each off by default and each tested."""
import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from eventtrail import privacy
from eventtrail.testing import capture_events

pytestmark = [pytest.mark.urls("tests.support.capture_urls"), pytest.mark.django_db(transaction=True)]


def opted_out(user):
    return user.username == "hermit"


def one(client, **extra):
    with capture_events() as events:
        client.get("/ok/?q=1", **extra)
    return events.flat()


def test_defaults_keep_ip_and_user():
    with override_settings(EVENTTRAIL={}):
        from eventtrail.conf import get_config

        config = get_config()
        assert not config["ANONYMIZE_IP"] and not config["PSEUDONYMIZE_USERS"]
        assert not config["HONOR_DNT"] and not config["HONOR_GPC"] and config["OPT_OUT"] is None


@pytest.mark.parametrize("ip,masked", [("203.0.113.77", "203.0.113.0"),
                                      ("2001:db8:abcd:12:34::1", "2001:db8:abcd::")])
def test_ip_anonymisation(client, ip, masked):
    assert one(client, REMOTE_ADDR=ip)[0]["source.ip"] == ip
    with override_settings(EVENTTRAIL={"ANONYMIZE_IP": True}):
        assert one(client, REMOTE_ADDR=ip)[0]["source.ip"] == masked


def test_pseudonymisation_uses_a_keyed_hash_the_query_side_can_recompute(client):
    user = User.objects.create_user("pat")
    client.force_login(user)
    with override_settings(EVENTTRAIL={"PSEUDONYMIZE_USERS": True}):
        (event,) = one(client)
        assert event["user.id"] == privacy.pseudonym(user.pk) == privacy.stored_user_id(user.pk)
        assert event["user.id"] != str(user.pk) and "user.name" not in event
    with override_settings(EVENTTRAIL={"PSEUDONYMIZE_USERS": True, "HASH_KEY": "other"}):
        assert one(client)[0]["user.id"] != event["user.id"]


def test_per_user_opt_out(client):
    hermit, other = User.objects.create_user("hermit"), User.objects.create_user("social")
    with override_settings(EVENTTRAIL={"OPT_OUT": "tests.test_privacy.opted_out"}):
        client.force_login(hermit)
        assert one(client) == []
        client.force_login(other)
        assert len(one(client)) == 1


@pytest.mark.parametrize("setting,header", [("HONOR_DNT", "HTTP_DNT"),
                                            ("HONOR_GPC", "HTTP_SEC_GPC")])
def test_dnt_and_gpc_are_honoured_when_configured(client, setting, header):
    assert len(one(client, **{header: "1"})) == 1
    with override_settings(EVENTTRAIL={setting: True}):
        assert one(client, **{header: "1"}) == []
        assert len(one(client, **{header: "0"})) == 1


def test_dnt_also_silences_signal_events_of_that_request(client):
    User.objects.create_user("quiet", password="pw-quiet-123")
    with override_settings(EVENTTRAIL={"HONOR_DNT": True}), capture_events() as events:
        client.post("/login/", {"username": "quiet", "password": "pw-quiet-123"}, HTTP_DNT="1")
    assert events == []


def test_scrubbing_covers_extra_keys_and_userinfo():
    with override_settings(EVENTTRAIL={"EXTRA_SCRUB_KEYS": ["ssn"]}):
        assert privacy.scrub_query("ssn=1&x=2") == "ssn=[scrubbed]&x=2"
        assert privacy.scrub_url("https://u:pw@h.example/p?apikey=3") == (
            "https://h.example/p?apikey=[scrubbed]")
        assert privacy.scrub_mapping({"a": {"X-Auth-Token": "t", "ok": 1}}) == {
            "a": {"X-Auth-Token": "[scrubbed]", "ok": 1}}
