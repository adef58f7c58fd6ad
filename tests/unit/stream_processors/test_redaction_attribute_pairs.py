"""An attribute is judged as ``key=value``, not as a bare value: a secret under a credential name
(``password``, ``db.password``, ``http.request.header.authorization``, ``aws.secret_access_key``)
is redacted whatever it looks like on its own, in every capture mode, on the byte pass-through
path and the full walk alike. Keys that only count tokens (``gen_ai.usage.input_tokens``,
``llm.token_count.*``, ``max_tokens``) keep their values."""
from __future__ import annotations

import uuid

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction import DEFAULT_ACTIONS, Redactor

from .redaction_benches import engine_changes, record_fires

SECRETS = {
    "password": "Tr0ub4dor3",
    "db.password": "Tr0ub4dor&3",
    "http.request.header.authorization": '["Basic dXNlcjpwYXNzd29yZA=="]',
    "http.request.header.x-api-key": '["q8ZtR2mN5vL0pK7sW3yH9"]',
    "api_key": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "secret": "0b6f1c1e-5a7d-4c1e-9f2a-3d4b5c6d7e8f",
    "aws.secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "app.dbPassword": "hunter2hunter2",
    "http.response.header.set-cookie": '["sid=abc; HttpOnly"]',
}
COUNTS = {
    "gen_ai.usage.input_tokens": "1234", "gen_ai.usage.output_tokens": "56", "llm.token_count.prompt": "78",
    "llm.token_count.completion_details.reasoning": "12", "llm.token_count.prompt_details.cache_read": "3",
    "max_tokens": "256", "gen_ai.request.max_tokens": "1024", "token_type": "bearer", "session.id": "s-1",
    "secret_name": "prod/db", "password_policy": "min 12", "cache_key": "user:42", "auth.method": "oidc",
    "http.request.header.content-type": '["application/json"]', "password": "********",
    # weak names: a secret only when the value looks like one
    "auth": "oauth2", "function.signature": "def lookup(order_id: str)", "dsn": "sentry", "salt": "pepper",
}
MODES = ("METADATA_ONLY", "SECURE_REFERENCE", "REDACTED")
codec = Codec()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", sorted(SECRETS))
def test_a_value_under_a_credential_name_is_redacted_in_every_mode(key, mode):
    value = SECRETS[key]
    for event in (syn.run_start("t", "r1", attributes={key: value, "tier": "gold"}),
                  syn.step("t", "r1", 1, args_digest="a" * 64, attributes={key: value})):
        event["capture_mode"] = mode
        out = Redactor(b"k").redact_event(event, DEFAULT_ACTIONS, "p1", capture_mode=mode)
        assert out["attributes"][key] == "[REDACTED:credential_assignment]", (key, out["attributes"])
        assert value not in repr(out)
        assert sum(out["redaction"]["rule_counts"].values()) >= 1
        assert record_fires(codec.encode(EVENT, event)), key  # the byte path never passes it on


def test_the_drop_action_removes_the_entry():
    event = syn.run_start("t", "r1", attributes={"password": "Tr0ub4dor3", "tier": "gold"})
    dropped = Redactor(b"k").redact_event(event, {"credential_assignment": "drop"}, "p1")
    assert dropped["attributes"] == {"tier": "gold"}
    assert dropped["redaction"]["rule_counts"] == {"sensitive_assignment": 1}


def test_national_id_names_are_judged_with_their_value():
    out = Redactor(b"k").redact_event(syn.run_start("t", "r", attributes={"customer.ssn": "574327428"}),
                                      DEFAULT_ACTIONS, "p1")
    assert out["attributes"]["customer.ssn"] == "[REDACTED:national_id]"


@pytest.mark.parametrize("key", sorted(COUNTS))
def test_counts_and_names_about_credentials_are_kept(key):
    event = syn.step("t", "r1", 1, args_digest="a" * 64, attributes={key: COUNTS[key]})
    out = Redactor(b"k").redact_event(event, DEFAULT_ACTIONS, "p1", capture_mode="REDACTED")
    assert out["attributes"] == {key: COUNTS[key]} and out["redaction"]["rule_counts"] == {}


def test_the_fast_path_and_the_walk_agree_on_pairs():
    r = Redactor(b"k")
    pairs = [(k, v, True) for k, v in SECRETS.items()] + [(k, v, False) for k, v in COUNTS.items()]
    for key, value, secret in pairs + [("note", str(uuid.uuid4()), False)]:
        event = syn.run_start("t", "r", attributes={key: value})
        changed = engine_changes(event, r)
        # the read-only check (cached verdicts) and the rewriting walk see the same pairs
        assert changed == secret, key
        assert record_fires(codec.encode(EVENT, event)) or not changed, key
