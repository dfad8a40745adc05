"""What a real Logstash 9.5.2 did with the hostile corpus and the shipped pipeline.

CI cannot assemble Logstash (it is built from fetched sources with ../shared/tools/real-logstash),
so scripts/real_logstash_run.py runs it by hand and records the result in
tests/data/real_logstash_run.json. These tests check that record: that it was made from the
pipeline, scripts and corpus in the tree now (a change to any calls for a new run), and that it
shows what the README claims.
"""
import json
from pathlib import Path

from tests.support.hostile import CORPUS, inputs_digest

ROOT = Path(__file__).resolve().parent.parent
RECORD = json.loads((ROOT / "tests" / "data" / "real_logstash_run.json").read_text())


def test_the_record_was_made_from_what_is_in_the_tree():
    assert RECORD["provenance"]["inputs_sha256"] == inputs_digest(), (
        "the pipeline, its scripts or the corpus changed: run scripts/real_logstash_run.py again")
    assert RECORD["provenance"]["logstash"] == "9.5.2"
    assert RECORD["cases"] == len(CORPUS) + 2  # the corpus, a mixed batch, a body that is not JSON


def test_the_pipeline_never_stopped():
    assert RECORD["http_statuses"] == [200]
    assert RECORD["pipeline_alive_after_corpus"] and RECORD["pipeline_alive_30s_after_restart"]
    assert RECORD["pipeline_worker_errors"] == 0
    assert RECORD["ruby_exceptions"] == 0 and RECORD["type_gate_errors"] == 0


def test_elasticsearch_took_every_document_and_each_went_where_the_explainer_said():
    assert RECORD["elasticsearch_rejections_in_dlq_bytes"] == 0
    assert RECORD["documents"] == RECORD["expected_documents"]
    assert RECORD["cases_checked_one_by_one"] >= 500
    assert RECORD["cases_not_where_the_explainer_said"] == []
