"""The SDK's side of the metadata allow-list (producer/capture.allowed_attributes), no broker."""
from __future__ import annotations

from agentstream.producer.capture import allowed_attributes

PROMPT = "Summarise Jane Roe's medical file"


def test_metadata_only_drops_content_keys_and_long_free_values_and_counts_them():
    attrs = {"gen_ai.input.messages": PROMPT, "llm.output_messages.0.message.content": PROMPT,
             "tool_args": {"q": PROMPT}, "notes": PROMPT * 20, "gen_ai.request.model": "gpt-4o",
             "retries": 2, "note": "short"}
    out = allowed_attributes(attrs, "METADATA_ONLY")
    assert out == {"gen_ai.request.model": "gpt-4o", "retries": 2, "note": "short",
                   "agentstream.attributes_dropped": "4"}
    assert "gen_ai.input.messages" in attrs  # the caller's dict is not changed


def test_secure_reference_drops_content_keys_but_keeps_long_free_values():
    out = allowed_attributes({"input.value": PROMPT, "notes": PROMPT * 20}, "SECURE_REFERENCE")
    assert out == {"notes": PROMPT * 20, "agentstream.attributes_dropped": "1"}


def test_redacted_mode_and_clean_attributes_pass_as_the_same_object():
    attrs = {"input.value": PROMPT}
    assert allowed_attributes(attrs, "REDACTED") is attrs
    clean = {"http.route": "/v1/chat"}
    assert allowed_attributes(clean, "METADATA_ONLY") is clean
    assert allowed_attributes(None, "METADATA_ONLY") is None
