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


def _reference(attrs, mode):
    """allowed_attributes as it was before its verdicts were remembered: the shared rules only."""
    from agentstream.schemas.attribute_keys import split_attributes

    if not attrs:
        return attrs
    kept, dropped = split_attributes(attrs, mode)
    if dropped:
        kept["agentstream.attributes_dropped"] = str(sum(dropped.values()))
    return kept


class _Shown(str):
    """A str whose str() is not its text: the rules judge the text, so must the memo."""

    def __str__(self) -> str:
        return "ok"


def test_remembered_verdicts_give_exactly_what_the_rules_give():
    import random

    rng = random.Random(18)
    keys = ["gen_ai.request.model", "temperature", "ticket", "notes", "input.value", "prompt",
            "gen_ai.input.messages", "tool.name", "lane", "user_query", "message", "http.route",
            1, ("t",)]
    words = ["refund", "policy", "the", "tell", "me", "order", "Ω", "中文", "x" * 30]
    values = [0.2, 3, True, None, "", "gpt-4o", "T-1", "short", "a b", _Shown("tell me the refund policy"),
              "tell me the refund policy", "x" * 63, "x" * 64, "x" * 65, "y" * 300,
              "Привет как дела у тебя", "中文" * 20, {"q": "x"}, ["a", "b c d e"]]
    for _ in range(3000):
        attrs = {}
        for _ in range(rng.randrange(1, 5)):
            k = rng.choice(keys)
            v = rng.choice(values) if rng.random() < 0.7 else " ".join(
                rng.choice(words) for _ in range(rng.randrange(1, 6)))
            attrs[k] = v
        for mode in ("METADATA_ONLY", "SECURE_REFERENCE", "REDACTED"):
            before = dict(attrs)
            got = allowed_attributes(attrs, mode)
            assert got == _reference(attrs, mode), (attrs, mode)
            assert attrs == before  # the caller's dict is never changed
            if got == attrs:
                assert got is attrs  # nothing dropped: the same object, no copy
