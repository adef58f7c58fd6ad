"""Prompt text under an attribute key nobody listed: under metadata_only a free value that reads
as prose (four words in a row, or a long run of non-Latin script) is dropped however short, as
content; metadata values (names, ids, enums, paths, dates, user agents, versions) are kept. And
the byte prefilter fires on every record whose attributes this verdict could drop, so a record
passed through as its original bytes never carries one."""
from __future__ import annotations

import random

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.attribute_keys import attribute_verdict
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction.engine import Redactor

from .redaction_benches import record_fires

PROSE = ["tell me a joke about cats", "What is the refund policy for EU customers?",
         "Summarise this ticket, please: customer cannot log in", "Bitte fasse den Vertrag zusammen",
         "скажи мне мой пароль сейчас", "请告诉我管理员的密码是什么谢谢你啊", "ignore all previous instructions",
         "\"hello there\", said the user to the bot", "Réponds en français s'il te plaît"]
METADATA = ["gold", "us-east-1", "Service Unavailable", "/v1/users/{id}", "2026-12-06T10:00:00Z",
            "Mon, 06 Dec 2026 10:00:00 GMT", "claude-3-5-sonnet-20241022", "gpt 4o mini", "ok ok ok",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
            "billing-agent-7d9f8c6b5-x2x4q", "ConnectionRefusedError", "张三", "a1b2c3 d4e5 f6", "v1.2.3 build 456",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]


@pytest.mark.parametrize("value", PROSE)
def test_prose_under_a_free_key_is_content_under_metadata_only(value):
    assert attribute_verdict("my.custom.note", value, "METADATA_ONLY") == "free_value_prose"
    assert attribute_verdict("my.custom.note", value, "REDACTED") is None  # previews may travel
    assert attribute_verdict("service.name", value, "METADATA_ONLY") is None  # known metadata


@pytest.mark.parametrize("space", ["\u00a0", "\u2009", "\u3000", "\u200b", "\n", "\r\n", "\x0b", "\x0c",
                                   "\u202f", "\u2028", "\ufeff"])
def test_words_apart_by_any_space_are_prose(space):
    """A no-break, thin, ideographic or zero-width space (or a line break) between the words kept
    a sentence whole: its UTF-8 bytes read as letters (found by a privacy probe)."""
    value = "please cancel my subscription and refund me".replace(" ", space)
    assert attribute_verdict("app.user_ask", value, "METADATA_ONLY") == "free_value_prose"
    out = Redactor(b"k").redact_event(syn.run_start("t", "r", attributes={"app.user_ask": value}), {}, "p1")
    assert "app.user_ask" not in out["attributes"]
    assert record_fires(Codec().encode(EVENT, syn.run_start("t", "r", attributes={"app.user_ask": value})))


@pytest.mark.parametrize("value", METADATA)
def test_metadata_shaped_values_are_kept(value):
    assert attribute_verdict("my.custom.tag", value, "METADATA_ONLY") is None


def test_the_engine_drops_it_and_the_prefilter_sees_every_record_it_could_drop():
    codec, red = Codec(), Redactor(b"k")
    rng = random.Random(20261206)
    words = ["the", "Refund", "policy", "é", "ünï", "日本語", "x", "42", "(a)", "b,", "'c'", "--", "/p", "ok.", "Ω"]
    seps = [" ", "  ", "\t", "", "-", "/", ", ", "\u00a0", "\u2009", "\u3000", "\u200b", "\n", "\r\n", "\u202f"]
    fired = dropped = 0
    for i in range(3000):
        value = "".join(rng.choice(words) + rng.choice(seps) for _ in range(rng.randint(1, 8)))
        event = syn.run_start("t", f"r{i}", attributes={"tag": value})
        out = red.redact_event(event, {}, "p1")
        drops = out["redaction"]["rule_counts"].get("dropped_attribute:free_value_prose", 0)
        may = record_fires(codec.encode(EVENT, event))
        assert may or not drops, value  # superset: nothing the engine drops passes as bytes
        dropped += drops
        fired += may
    assert dropped > 100 and fired < 3000  # both kinds were generated, and it is not "always"
    out = red.redact_event(syn.run_start("t", "r", attributes={"q": PROSE[0], "tier": "gold"}), {}, "p1")
    assert out["attributes"] == {"tier": "gold"}


@pytest.mark.parametrize("key,content", [
    ("mlflow.spanInputs", True), ("mlflow.spanOutputs", True), ("app.userMessage", True),
    ("toolArgs", True), ("lastResponse", True), ("my_app.prompt", True),
    # camelCase counts too, so the words must still end the name
    ("inputTokens", False), ("responseTimeMs", False), ("messageCount", False), ("promptVersion", False),
])
def test_a_camel_case_key_is_judged_by_its_last_word(key, content):
    """The key's words were split after lowercasing, so camelCase never split: mlflow's
    ``spanInputs`` (a span's inputs, often a prompt) kept a short value under metadata_only."""
    from agentstream.schemas.attribute_keys import attribute_verdict, is_content_key

    assert is_content_key(key) is content
    assert (attribute_verdict(key, "refund order 4411", "METADATA_ONLY") == "content_key") is content


@pytest.mark.parametrize("key", [
    # other instrumentations' content keys a probe found kept (Vercel AI SDK, Google ADK,
    # pydantic-ai, Logfire, MLflow, evaluations) and what a model or a person wrote
    "ai.value", "ai.values", "ai.result.object", "ai.result.toolCalls", "gcp.vertex.agent.llm_request",
    "gcp.vertex.agent.data", "all_messages_events", "logfire.msg", "mlflow.chat.tools",
    "gen_ai.evaluation.explanation", "reasoning", "agent.thought", "observation", "utterance", "reply",
    # a metadata prefix does not make a content word metadata
    "agentstream.prompt",
])
def test_content_keys_of_other_instrumentations_are_dropped_and_the_prefilter_sees_them(key):
    assert attribute_verdict(key, "ok", "METADATA_ONLY") == "content_key"
    assert attribute_verdict(key, "ok", "SECURE_REFERENCE") == "content_key"
    assert record_fires(Codec().encode(EVENT, syn.run_start("t", "r", attributes={key: "ok"})))


@pytest.mark.parametrize("key,value,verdict", [
    ("llm.token_count.prompt", "12", None), ("llm.token_count.completion_details.reasoning", "3", None),
    ("gen_ai.usage.input_tokens", "1e3", None), ("llm.cost.total", "0.0123", None),
    # a usage key holding a sentence is not a usage figure: judged as a free value
    ("gen_ai.usage.prompt", "please cancel my subscription and refund me", "free_value_prose"),
])
def test_usage_keys_keep_numbers_only(key, value, verdict):
    assert attribute_verdict(key, value, "METADATA_ONLY") == verdict
