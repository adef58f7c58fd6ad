"""The SDK's followed policy (``governance.durable_tools``), without a broker: the records of the
compacted policies topic applied in order, as the follower thread applies them."""
from __future__ import annotations

import pytest

from agentstream.producer import Tracer
from agentstream.producer.policy_follower import DurablePolicy
from agentstream.schemas import POLICY, Codec
from agentstream.schemas.alerting import make_key

CODEC = Codec()
TENANT = "acme"


def policy(tenant: str = TENANT, durable: list[str] | None = None, version: str = "v1") -> bytes:
    return CODEC.encode(POLICY, {"tenant_id": tenant, "version": version,
                                 "governance": {"durable_tools": durable or []}})


def followed(*records: tuple[bytes | None, bytes | None], loaded: bool = True) -> DurablePolicy:
    state = DurablePolicy(TENANT, lambda b: CODEC.decode_as(POLICY, b))
    for key, value in records:
        state.apply(key, value)
    if loaded:
        state.loaded.set()
    return state


def test_until_the_policy_is_read_a_tool_with_an_action_class_is_durable():
    state = followed((b"acme", policy(durable=[])), loaded=False)
    assert state.durable("refund", "payments.refund")
    assert state.durable("anything", "search.web")  # not read: no class is known to be safe
    assert not state.durable("search", None)  # a plain tool is matched by name once read
    state.loaded.set()
    assert not state.durable("refund", "payments.refund")


def test_a_read_policy_names_durable_classes_and_tool_names():
    state = followed((b"acme", policy(durable=["payments.*", "delete_repo"])))
    assert state.durable("refund", "payments.refund")
    assert state.durable("wire", "payments.wire.eu")
    assert not state.durable("refund", "search.web")
    assert state.durable("delete_repo", None)  # by tool name
    assert state.durable("payments.refund", None)  # a name matches like a class
    assert not state.durable("search", None)
    assert state.stats()["policy_durable_tools"] == ["payments.*", "delete_repo"]
    assert state.version == "v1"


def test_no_policy_for_the_tenant_makes_nothing_durable_once_read():
    state = followed((b"globex", policy("globex", ["*"])))
    assert not state.durable("refund", "payments.refund") and not state.durable("rm", None)
    assert state.ignored == 1 and state.applied == 0


def test_the_latest_record_wins_and_a_tombstone_clears_it():
    state = followed((b"acme", policy(durable=["payments.*"])),
                     (b"acme", policy(durable=["ops.*"], version="v2")))
    assert not state.durable("refund", "payments.refund") and state.durable("restart", "ops.restart")
    state.apply(b"acme", None)
    assert not state.durable("restart", "ops.restart") and state.version is None
    state.apply(b"acme", b"")  # an empty value is a tombstone too
    state.apply(b"acme", policy(durable=["payments.*"], version="v3"))
    assert state.durable("refund", "payments.refund") and state.version == "v3"
    assert state.applied == 5


@pytest.mark.parametrize("bad", [
    b"not avro at all", b"\x00\x00\x00\x00\x06", b"\x00\x00\x00\x7f\x7f garbage",
    CODEC.encode(POLICY, {"tenant_id": "globex", "governance": {"durable_tools": ["*"]}}),  # wrong tenant
])
def test_an_undecodable_record_is_skipped_counted_and_keeps_the_last_good_policy(bad):
    state = followed((b"acme", policy(durable=["payments.*"])), (b"acme", bad))
    assert state.undecodable == 1 and state.applied == 1
    assert state.durable("refund", "payments.refund") and not state.durable("rm", None)


def test_alerting_records_under_nul_keys_are_not_policies():
    state = followed((b"acme", policy(durable=["payments.*"])),
                     (make_key(TENANT, "routing"), b"{}"), (make_key(TENANT, "state", "a1"), None),
                     (None, policy(durable=["*"])))
    assert state.durable("refund", "payments.refund") and not state.durable("rm", None)
    assert state.ignored == 3 and state.undecodable == 0


@pytest.mark.parametrize("err", [KeyError("schema id 99"), RuntimeError("registry down"), RecursionError()])
def test_a_decoder_that_raises_anything_never_reaches_the_agent(err):
    def decode(_b: bytes) -> dict:
        raise err

    state = DurablePolicy(TENANT, decode)
    state.apply(b"acme", b"x")
    assert state.undecodable == 1
    state = DurablePolicy(TENANT, lambda b: {"tenant_id": TENANT, "governance": None})
    state.apply(b"acme", b"v1 policy")  # a v1 policy has no governance: nothing durable
    state.loaded.set()
    assert state.applied == 1 and not state.durable("refund", "payments.refund")


def test_set_durable_tools_overrides_the_followed_policy_and_following_can_be_off(tmp_path):
    conf = dict(bootstrap_servers="127.0.0.1:1", topic_prefix="unit.", spool_dir=str(tmp_path),
                commands_enabled=False, enabled=True)
    off = Tracer(TENANT, "a", "1", "test", follow_policy=False, **conf)
    assert not off.is_durable("refund", "payments.refund")  # only durable=True / the override
    assert not off.policy_ready(0) and "policy_loaded" not in off.stats()  # no follower started
    manual = Tracer(TENANT, "a", "1", "test", **conf)
    manual.set_durable_tools(["payments.*"])
    assert manual.is_durable("refund", "payments.refund")
    assert not manual.is_durable("search", "search.web")
    assert "policy_loaded" not in manual.stats()  # an override needs no follower
    manual.set_durable_tools([])
    assert not manual.is_durable("refund", "payments.refund")


def test_a_follower_that_cannot_start_leaves_action_classes_durable_and_never_raises(tmp_path, monkeypatch):
    from agentstream.producer import policy_follower

    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(policy_follower.PolicyFollower, "start", refuse)
    t = Tracer(TENANT, "a", "1", "test", bootstrap_servers="127.0.0.1:1", topic_prefix="unit.",
               spool_dir=str(tmp_path), commands_enabled=False)
    assert t.is_durable("refund", "payments.refund")  # unread: fail closed
    assert not t.is_durable("search", None)
    assert not t.policy_ready(0.01)
    assert t.stats()["policy_loaded"] is False
    t.close(1)
