"""Identifiers never cost a run; content stays out of attributes under metadata_only.

Attacks first: realistic ids of many styles whose digit runs pass Luhn (they used to quarantine
whole runs), secrets hidden in ids, prompts hidden in attributes under every known content key and
under made-up keys as long free text."""
from __future__ import annotations

import random
import string
import uuid

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.attribute_keys import MAX_FREE_VALUE_CHARS
from agentstream.schemas.id_format import is_id_shaped
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import RedactionError, Redactor
from agentstream.stream_processors.redaction.fields import effective_mode
from agentstream.stream_processors.redaction_stage import RedactionStage

B62 = string.ascii_letters + string.digits
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _luhn_digits(r: random.Random, n: int) -> str:
    while True:
        d = "".join(r.choice(string.digits) for _ in range(n))
        total = sum((int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2) if i % 2 == n % 2 else int(c)
                    for i, c in enumerate(d))
        if total % 10 == 0 and d[0] in "45":
            return d  # card-shaped digits on purpose: the worst case for an id


def realistic_ids(r: random.Random, n: int) -> list[str]:
    styles = [
        lambda: str(uuid.UUID(int=r.getrandbits(128), version=4)),
        lambda: str(uuid.UUID(int=r.getrandbits(128), version=1)).upper(),
        lambda: "".join(r.choice(CROCKFORD) for _ in range(26)),  # ULID
        lambda: "run_" + "".join(r.choice("0123456789abcdef") for _ in range(16)),
        lambda: "run_" + _luhn_digits(r, 16),
        lambda: f"run-{r.randint(0, 10**9)}",
        lambda: "".join(r.choice(B62) for _ in range(27)),  # KSUID
        lambda: str(r.randint(10**17, 10**19 - 1)),  # snowflake
        lambda: "".join(r.choice(B62 + "_-") for _ in range(21)),  # nanoid
        lambda: "".join(r.choice("0123456789abcdef") for _ in range(32)),  # trace id
        lambda: "sess_" + "".join(r.choice(B62) for _ in range(24)),
        lambda: "call_" + "".join(r.choice(B62) for _ in range(24)),
        lambda: "chatcmpl-" + "".join(r.choice(B62) for _ in range(29)),
        lambda: "msg_01" + "".join(r.choice(B62) for _ in range(22)),
        lambda: "".join(r.choice("0123456789abcdef") for _ in range(24)),  # ObjectId
        lambda: f"{r.randint(2020, 2026)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}-{_luhn_digits(r, 16)}",
        lambda: f"ord-{_luhn_digits(r, 16)}-{r.randint(1, 9)}",
        lambda: f"{_luhn_digits(r, 16)}",
        lambda: f"job:{r.randint(1, 999)}:{uuid.UUID(int=r.getrandbits(128), version=4).hex}",
        lambda: f"tenant/{r.randint(1, 99)}/run/{r.randint(10**15, 10**16)}",
    ]
    return [styles[i % len(styles)]() for i in range(n)]


def _stage(mode: str = "METADATA_ONLY") -> RedactionStage:
    book = PolicyBook()
    book.set(TenantPolicy("acme", capture_mode=mode))
    return RedactionStage(Codec(), Redactor(b"k"), book, "f.")


def test_thousands_of_realistic_ids_never_quarantine():
    r = random.Random(16)
    ids = realistic_ids(r, 4000)
    stage, codec = _stage(), Codec()
    batch = []
    for i in range(0, len(ids) - 4, 4):
        run, sess, parent, step = ids[i:i + 4]
        ev = syn.step("acme", run, 2, name="search", args_digest="d")
        ev["session_id"], ev["parent_run_id"], ev["event_id"] = sess, parent, step
        ev["payload"]["step_id"] = step
        ev["payload"]["retry_of"] = parent
        batch.append(InRecord("f.raw", 0, i, run.encode(), codec.encode(EVENT, ev)))
    out: list = []
    passed = stage.process(batch, out)
    assert stage.counts.quarantine == 0 and stage.counts.dlq == 0
    assert len(passed) == len(batch) and {o.topic for o in out} == {"f.events"}
    for p in passed:  # untouched: same ids out as in
        assert p.event["redaction"]["rule_counts"] == {}


def test_a_session_keyed_by_a_phone_number_passes_the_stage_under_its_pseudonym():
    # the byte path: the record is decoded, kept on events (not quarantined), its number gone
    stage, codec = _stage(), Codec()
    batch = []
    for i in range(6):
        ev = syn.step("acme", f"run-{i}", 2)
        ev["session_id"] = "whatsapp:+14155550132"
        batch.append(InRecord("f.raw", 0, i, ev["run_id"].encode(), codec.encode(EVENT, ev)))
    out: list = []
    passed = stage.process(batch, out)
    assert stage.counts.quarantine == 0 and len(passed) == 6 and {o.topic for o in out} == {"f.events"}
    assert not any(b"4155550132" in o.value for o in out)
    assert len({p.event["session_id"] for p in passed}) == 1


ENVELOPE_SECRETS = [
    ("sk-proj-" + "Ab3" * 16, "openai_api_key"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
    ("AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
    ("bob@example.com", "email"),
    ("4111 1111 1111 1111", "payment_card"),  # not id-shaped: scanned as text
]


@pytest.mark.parametrize("value,rule", ENVELOPE_SECRETS)
def test_a_secret_in_the_run_id_quarantines(value, rule):
    ev = syn.step("acme", "run-1", 2)
    ev["run_id"] = value
    with pytest.raises(RedactionError) as e:
        Redactor(b"k").redact_event(ev, {}, "p")
    assert e.value.reason == f"identifier field run_id matches rule {rule}" and value not in e.value.reason


@pytest.mark.parametrize("field", ["session_id", "event_id", "parent_run_id", "parent_step_id"])
@pytest.mark.parametrize("value,rule", ENVELOPE_SECRETS)
def test_a_secret_in_another_envelope_id_becomes_its_keyed_pseudonym(field, value, rule):
    # not the Kafka key: the event is kept, the id replaced whole, the same id by the same token
    # in every event (a session still groups), another id or another key by another token
    r = Redactor(b"k")
    outs = []
    for seq in (2, 3):
        ev = syn.step("acme", "run-1", seq)
        ev[field] = value
        outs.append(r.redact_event(ev, {}, "p"))
    a, b = outs
    assert value not in repr(a) and a[field] == b[field] and is_id_shaped(a[field])
    assert a["redaction"]["rule_counts"] == {rule: 1} and a["run_id"] == "run-1"
    ev = syn.step("acme", "run-1", 2)
    ev[field] = value + "x" if rule != "payment_card" else "5500 0000 0000 0004"
    assert r.redact_event(ev, {}, "p")[field] != a[field]
    ev[field] = value
    assert Redactor(b"other").redact_event(ev, {}, "p")[field] != a[field]


def test_a_secret_in_a_nested_id_is_redacted_not_skipped():
    ev = syn.step("acme", "run-1", 2)
    ev["payload"]["step_id"] = "ghp_" + "a1B2" * 9
    out = Redactor(b"k").redact_event(ev, {}, "p")
    assert "ghp_" not in str(out["payload"]) and out["redaction"]["rule_counts"] == {"github_token": 1}


CONTENT = "Summarise the contract for Jane; she said the launch code is blue-falcon-7"
CONTENT_KEYS = [
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result", "gen_ai.prompt.0.content", "gen_ai.completion.0.content", "input.value",
    "output.value", "llm.input_messages.0.message.content", "llm.output_messages.1.message.contents.0.message_content.text",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments", "llm.tools.0.tool.json_schema",
    "llm.invocation_parameters", "llm.prompt_template.template", "tool.parameters", "retrieval.documents.0.document.content",
    "traceloop.entity.input", "traceloop.entity.output", "langchain.entity.input", "my_agent.prompt", "tool_args",
]


@pytest.mark.parametrize("mode", ["METADATA_ONLY", "SECURE_REFERENCE"])
@pytest.mark.parametrize("key", CONTENT_KEYS)
def test_content_keys_are_dropped_and_counted_never_by_value(key, mode):
    ev = syn.step("acme", "run-1", 2, attributes={key: CONTENT, "gen_ai.request.model": "gpt-4o", "note": "ok"})
    ev["capture_mode"] = mode
    out = Redactor(b"k").redact_event(ev, {}, "p", capture_mode=mode)
    assert out["attributes"] == {"gen_ai.request.model": "gpt-4o", "note": "ok"}
    assert out["redaction"]["rule_counts"] == {"dropped_attribute:content_key": 1}
    assert "launch" not in str(out)


def test_long_free_values_are_dropped_under_metadata_only_and_short_ones_redacted():
    long = "word " * (MAX_FREE_VALUE_CHARS // 5 + 2)
    ev = syn.step("acme", "run-1", 2, attributes={"notes": long, "who": "mail bob@example.com",
                                                   "gen_ai.response.finish_reasons": long})
    out = Redactor(b"k").redact_event(ev, {}, "p")
    assert out["attributes"] == {"who": "mail [REDACTED:email]", "gen_ai.response.finish_reasons": long}
    assert out["redaction"]["rule_counts"] == {"dropped_attribute:free_value_too_long": 1, "email": 1}


def test_redacted_mode_keeps_content_keys_redacted():
    ev = syn.step("acme", "run-1", 2, attributes={"input.value": "call +44 7911 123456 now"})
    ev["capture_mode"] = "REDACTED"
    out = Redactor(b"k").redact_event(ev, {}, "p", capture_mode="REDACTED")
    assert out["attributes"] == {"input.value": "call [REDACTED:phone] now"}


def test_the_stricter_capture_mode_wins():
    assert effective_mode("REDACTED", "METADATA_ONLY") == "METADATA_ONLY"
    assert effective_mode("METADATA_ONLY", "REDACTED") == "METADATA_ONLY"
    assert effective_mode("REDACTED", "SECURE_REFERENCE") == "SECURE_REFERENCE"
    assert effective_mode("REDACTED", None) == "METADATA_ONLY"
    ev = syn.step("acme", "run-1", 2, attributes={"input.value": CONTENT})
    ev["capture_mode"] = "METADATA_ONLY"  # the SDK promised it; a lax tenant policy cannot undo it
    assert "input.value" not in Redactor(b"k").redact_event(ev, {}, "p", capture_mode="REDACTED")["attributes"]


def test_stage_emits_the_filtered_event_with_counts():
    stage, codec = _stage(), Codec()
    ev = syn.step("acme", "run-1", 2, attributes={"llm.input_messages.0.message.content": CONTENT})
    out: list = []
    stage.process([InRecord("f.raw", 0, 0, b"run-1", codec.encode(EVENT, ev))], out)
    (rec,) = out
    got = codec.decode_as(EVENT, rec.value)
    assert got["attributes"] == {} and b"launch" not in rec.value
    assert got["redaction"]["rule_counts"] == {"dropped_attribute:content_key": 1}


def test_what_an_edge_dropped_is_carried_into_the_summary():
    ev = syn.step("acme", "run-1", 2, attributes={"note": "ok"})
    ev["redaction"] = {"policy_version": "gateway", "rule_counts": {"dropped_attribute:content_key": 3,
                                                                    "email": 9}}  # only drops carry over
    out = Redactor(b"k").redact_event(ev, {}, "p")
    assert out["redaction"] == {"policy_version": "p", "rule_counts": {"dropped_attribute:content_key": 3}}
