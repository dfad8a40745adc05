"""scripts/e2e.py (run by `make e2e` where Docker is): its probe events are real schema events."""
import importlib.util
from pathlib import Path

from eventtrail import schema

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("e2e", ROOT / "scripts/e2e.py")
e2e = importlib.util.module_from_spec(spec)
spec.loader.exec_module(e2e)


def test_probe_events_are_valid_capture_events():
    event = e2e.new_event(**{"source.ip": "8.8.8.8"})
    assert schema.errors(event, {schema.Producer.CAPTURE}) == []
    assert event["url"]["path"].endswith(event["event"]["id"])


def test_probe_user_agent_differs_from_the_delivery_request_one():
    event = e2e.new_event()
    assert event["user_agent"]["original"] != e2e.DELIVERY_UA
    assert "bot" not in e2e.BROWSER_UA.lower()


def test_link_parser_collects_anchor_targets():
    links = e2e.Links()
    links.feed('<a href="/c/one/">x</a><a>no href</a><link href="/style.css"><a href="/a/2/">y</a>')
    assert links.hrefs == ["/c/one/", "/a/2/"]


def test_stack_uses_its_own_ports_and_project():
    assert e2e.PROJECT == "eventtrail-e2e"
    assert set(e2e.PORTS) == {"WEB_PORT", "KIBANA_PORT", "ELASTICSEARCH_PORT", "LOGSTASH_HTTP_PORT"}
    assert all(port not in {"8000", "5601", "9200", "8080"} for port in e2e.PORTS.values())
