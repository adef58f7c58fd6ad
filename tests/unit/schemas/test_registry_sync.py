"""Subject naming and schema identity for the Schema Registry (no registry needed here; the
integration tests drive a Confluent-compatible one)."""
from __future__ import annotations

import json

import pytest

from agentstream.schemas import ALERT, COMMAND, EVENT, POLICY, load_catalog
from agentstream.schemas.registry_sync import fingerprint, subjects_for


def test_topic_name_strategy_is_confluents_topic_value_subjects():
    assert subjects_for(EVENT, "topic_name", "p.") == ["p.raw-value", "p.events-value"]
    assert subjects_for(COMMAND, "topic_name", "p.") == ["p.commands-value"]
    assert subjects_for(ALERT, "topic_name", "p.") == ["p.alerts-value"]
    assert subjects_for(POLICY, "topic_name") == ["agentstream.policies-value"]


def test_record_name_strategy_is_the_full_record_name():
    assert subjects_for(EVENT, "record_name", "p.") == ["agentstream.v1.Event"]
    with pytest.raises(ValueError, match="topic_name"):
        subjects_for(EVENT, "topic_id")


def test_fingerprint_ignores_docs_and_layout_but_not_the_schema():
    v2 = load_catalog().by_id(5).text
    doc = json.loads(v2)
    doc["doc"] = "another doc"
    assert fingerprint(json.dumps(doc, indent=None, separators=(",", ":"))) == fingerprint(v2)
    assert fingerprint(v2) != fingerprint(load_catalog().by_id(1).text)
