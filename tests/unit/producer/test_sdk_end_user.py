"""Event v2's end_user_id from the SDK: only the keyed digest ever leaves the agent."""
from __future__ import annotations

import pytest

from agentstream.schemas.digests import end_user_digest

from step_support import delivered, make_tracer

KEY = "k" * 32
# ids of every shape an agent may hold: emails, unicode, quotes, numbers, long ones
RAW_IDS = ["alice@example.com", "Zoë \"the\" user\\n", 4242424242, "用户-七", "x" * 500]


@pytest.fixture(params=[True, False], ids=["c-core", "python-core"])
def tracer(tmp_path, request):
    return make_tracer(tmp_path, request.param, digest_key=KEY)


@pytest.mark.parametrize("raw", RAW_IDS)
def test_every_event_of_the_run_carries_the_keyed_digest_and_never_the_raw_id(tracer, raw):
    from agentstream.schemas import Codec

    with tracer.run("triage", end_user_id=raw) as run:
        with run.llm_step("openai", "gpt-4o"):
            pass
        run.tool_call("search", {"q": 1}, latency_ms=1.0)
    records = delivered(tracer)
    assert len(records) >= 4
    want = end_user_digest(KEY.encode(), str(raw))  # a number is digested as its text
    codec = Codec()
    for _key, value in records:
        assert str(raw).encode() not in value
        assert codec.decode(value)[1]["end_user_id"] == want
    assert run.end_user_id == want


def test_the_digest_is_the_sdk_keyed_digest_the_gateway_also_makes(tracer):
    raw = "bob@example.org"
    assert tracer.digest(raw) == end_user_digest(KEY.encode(), raw)
    assert tracer.run("r", end_user_id=raw).end_user_id == end_user_digest(KEY.encode(), raw)


def test_no_id_an_empty_id_and_an_unprintable_id_send_null(tracer):
    class Bad:
        def __str__(self):
            raise RuntimeError("no")

    for value in (None, "", Bad()):
        with tracer.run("r", end_user_id=value) as run:
            pass
        assert run.end_user_id is None
    from agentstream.schemas import Codec
    assert all(Codec().decode(v)[1]["end_user_id"] is None for _k, v in delivered(tracer))


def test_a_handoff_child_acts_for_the_same_end_user_unless_told_otherwise(tracer):
    parent = tracer.run("parent", end_user_id="carol")
    child = tracer.run("child", parent=parent)
    other = tracer.run("other", parent=parent, end_user_id="dave")
    assert child.end_user_id == parent.end_user_id == end_user_digest(KEY.encode(), "carol")
    assert other.end_user_id == end_user_digest(KEY.encode(), "dave")


def test_different_keys_give_unlinkable_digests(tmp_path):
    a = make_tracer(tmp_path, False, digest_key="a" * 32).run("r", end_user_id="erin")
    b = make_tracer(tmp_path / "b", False, digest_key="b" * 32).run("r", end_user_id="erin")
    assert a.end_user_id != b.end_user_id and len(a.end_user_id) == 64
