"""A step's content preview and reference leave the processors only as the stricter of the
tenant's capture mode and the event's own allows, and a preview is at most ``PREVIEW_CHARS``.

Found by a privacy probe: a STEP posted to /v1/ingest declaring ``METADATA_ONLY`` with a 5,040-
character preview and a reference, for a tenant in REDACTED mode, was stored whole (the content
was judged by the tenant's mode only, while attributes already used the stricter one)."""
from __future__ import annotations

import pytest

from agentstream.schemas.redaction_summary import PREVIEW_CHARS
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction import Redactor

PROMPT = "Summarise the attached contract for the customer and list every clause about refunds. " * 60


def _step(event_mode: str) -> dict:
    e = syn.step("t", "r", 1, name="chat")
    e["capture_mode"] = event_mode
    e["payload"] = {**e["payload"], "content": {"preview": PROMPT, "reference": "s3://bucket/prompts/1"}}
    return e


@pytest.mark.parametrize("tenant,event,preview,reference", [
    ("REDACTED", "METADATA_ONLY", False, False),
    ("REDACTED", "SECURE_REFERENCE", False, True),
    ("REDACTED", "REDACTED", True, True),
    ("SECURE_REFERENCE", "REDACTED", False, True),
    ("METADATA_ONLY", "REDACTED", False, False),
    ("SECURE_REFERENCE", "SECURE_REFERENCE", False, True),
])
def test_content_follows_the_stricter_mode(tenant, event, preview, reference):
    out = Redactor(b"k").redact_event(_step(event), {}, "p1", capture_mode=tenant)
    content = out["payload"]["content"]
    assert (content["preview"] is not None) == preview
    assert (content["reference"] is not None) == reference
    if preview:
        assert len(content["preview"]) == PREVIEW_CHARS and PROMPT.startswith(content["preview"])
    if not (preview and reference):
        assert out["redaction"]["rule_counts"]["capture_policy"] >= 1


def test_a_preview_within_the_bound_is_kept_whole():
    e = _step("REDACTED")
    e["payload"]["content"]["preview"] = "short glimpse of the prompt"
    out = Redactor(b"k").redact_event(e, {}, "p1", capture_mode="REDACTED")
    assert out["payload"]["content"]["preview"] == "short glimpse of the prompt"
    assert "capture_policy" not in out["redaction"]["rule_counts"]
