"""A call repeated with identical arguments is progress when its result changes (docs/processors.md,
Loops): polling ``get_job_status(id=42)`` until the job is done is not a loop; the same call with
the same result is, as before.

Found by an adversarial probe: an agent polling a job's status 8 times, the status moving from
``queued`` through ``running 10 %`` ... to ``done``, was alerted and stopped as a ``repeat`` loop
at the 6th poll. The SDK attaches a keyed digest of a step's result
(``agentstream.return_digest``, ``Step.record_result``; never the result); the rule
(``schemas/loop_repeats.py``): a call counts among the calls of its signature since the
signature's result last changed, so ``max_repeats`` is how many calls in a row may return an
unchanged result. LLM calls are not judged by their result (a model's sampled reply differing is
not progress).

Runs are generated from seeds: polls whose result changes every few calls (silent), polls that
stall on one result (fire at the call the rule names), mixed with other steps and retries.
"""
from __future__ import annotations

import random
from typing import Any

import pytest

from agentstream.schemas import ALERT, EVENT, Codec, loop_repeats
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.detectors import runs
from agentstream.stream_processors.policies import LOOP_DEFAULTS, PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

RESULT = "agentstream.return_digest"  # literally: the contract's key


def test_the_key_is_the_contracts():
    assert loop_repeats.RESULT_DIGEST_ATTR == RESULT


def _poll(run: str, seq: int, result: str | None, name: str = "get_job_status", args: str = "job-42",
          kind: str = "TOOL", attempt: int = 1) -> dict[str, Any]:
    attrs = {RESULT: result} if result is not None else {}
    if kind == "LLM":
        e = syn.llm_step("t", run, seq, cost_usd=0.0, attributes=attrs)
        e["payload"]["llm"]["request_digest"] = args
        return e
    return syn.step("t", run, seq, name=name, args_digest=args, attempt=attempt, attributes=attrs,
                    ts_us=1_767_600_000_000_000 + seq * 1_000_000)


def _loops(events: list[dict[str, Any]], loops: dict[str, Any]) -> list[tuple[int, str]]:
    st = runs.new_state()
    out = []
    for e in events:
        out += [(e["seq"], f.evidence["reasons"]) for f in runs.observe(st, e, loops, {}) if f.alert_type == "loop"]
    return out


def _policy(rng: random.Random) -> dict[str, Any]:
    return {**LOOP_DEFAULTS, "max_repeats": rng.randint(2, 6), "max_ping_pong": rng.randint(2, 4),
            "repeat_window": rng.choice([24, 40, 0])}


def _other(rng: random.Random, run: str, seq: int) -> dict[str, Any]:
    """A step between polls: new arguments, or no digest at all."""
    if rng.random() < 0.5:
        return syn.step("t", run, seq, name=rng.choice(["search", "fetch"]), args_digest=f"x{rng.getrandbits(64)}")
    return syn.step("t", run, seq, name="think", step_kind="CUSTOM", args_digest=None)


@pytest.mark.parametrize("seed", range(60))
def test_polling_until_done_is_progress(seed):
    rng = random.Random(seed)
    loops = _policy(rng)
    limit = loops["max_repeats"]
    events, seq, status = [syn.run_start("t", "r")], 1, 0
    for _ in range(rng.randint(limit + 2, 4 * limit + 8)):
        # the result changes at least every ``limit - 1`` polls: never ``limit`` unchanged ones
        # in a row after the one that showed the change
        for _ in range(rng.randint(1, max(1, limit - 1))):
            events.append(_poll("r", seq, f"s{status:04d}"))
            seq += 1
            if rng.random() < 0.3:
                events.append(_other(rng, "r", seq))
                seq += 1
        status += 1
    assert _loops(events, loops) == []


@pytest.mark.parametrize("seed", range(60))
def test_a_poll_stuck_on_one_result_is_still_a_loop(seed):
    """Results move for a while, then stop changing: the ``max_repeats + 1``-th call after the
    call that returned the final result fires (the call that returned it counted with the ones
    before it: its result was not known when it started)."""
    rng = random.Random(1000 + seed)
    loops = _policy(rng)
    limit = loops["max_repeats"]
    events, seq = [syn.run_start("t", "r")], 1
    moving = rng.randint(0, 6)
    for status in range(moving):
        for _ in range(rng.randint(1, max(1, limit - 1))):
            events.append(_poll("r", seq, f"moving{status}"))
            seq += 1
    events.append(_poll("r", seq, "stuck"))
    seq += 1
    # with no result before it, the first "stuck" call is the first of the streak
    fire_at = limit + 1 if moving else limit
    expected = None
    for n in range(1, limit + 4):
        if rng.random() < 0.3:
            events.append(_other(rng, "r", seq))
            seq += 1
        events.append(_poll("r", seq, "stuck"))
        if n == fire_at:
            expected = seq
        seq += 1
    found = _loops(events, loops)
    assert found and found[0][0] == expected and "repeat" in found[0][1], (found, expected)


@pytest.mark.parametrize("seed", range(20))
def test_identical_args_and_results_fire_where_calls_without_results_do(seed):
    """A constant result is no progress: the same step fires as with no result at all. (Between
    the calls only steps without arguments: new calls between are progress for a call that
    reports no result, loop_repeats.count_repeat, while a constant result stays no progress.)"""
    rng = random.Random(2000 + seed)
    loops = _policy(rng)
    plain, same = [syn.run_start("t", "r")], [syn.run_start("t", "r")]
    for seq in range(1, 40):
        if rng.random() < 0.4:
            e = syn.step("t", "r", seq, name="think", step_kind="CUSTOM", args_digest=None)
            plain.append(e)
            same.append(e)
        else:
            plain.append(_poll("r", seq, None))
            same.append(_poll("r", seq, "pending"))
    assert _loops(plain, loops) == _loops(same, loops) != []


def test_llm_calls_are_not_judged_by_their_result():
    loops = {**LOOP_DEFAULTS, "max_repeats": 3}
    events = [syn.run_start("t", "r")] + [_poll("r", i, f"reply{i}", kind="LLM", args="same-prompt")
                                          for i in range(1, 6)]
    assert [s for s, _ in _loops(events, loops)] == [4]


def test_a_retrys_result_is_the_calls_result():
    """Each poll fails once and its retry returns the new status: progress."""
    loops = {**LOOP_DEFAULTS, "max_repeats": 2, "max_retries": 3}
    events, seq = [syn.run_start("t", "r")], 1
    for status in range(10):
        events.append(_poll("r", seq, None))
        events.append(_poll("r", seq + 1, f"s{status}", attempt=2))
        seq += 2
    assert _loops(events, loops) == []


def test_a_changing_result_breaks_a_ping_pong_too():
    """LLM <-> the same poll, the poll's result changing: progress, not a ping-pong."""
    loops = {**LOOP_DEFAULTS, "max_repeats": 50, "max_ping_pong": 2}
    events, seq = [syn.run_start("t", "r")], 1
    for status in range(8):
        events.append(_poll("r", seq, None, kind="LLM", args="same-prompt"))
        events.append(_poll("r", seq + 1, f"s{status}"))
        seq += 2
    found = _loops(events, loops)
    assert all("ping_pong" not in reasons for _, reasons in found), found


@pytest.mark.parametrize("seed", range(4))
def test_the_hot_path_reads_the_result(seed):
    """Encoded records through the chain (redaction's byte pass and the field reader, not a
    full decode): 64-hex result digests pass untouched and reach the loop rule."""
    rng = random.Random(3000 + seed)
    codec = Codec()
    book = PolicyBook()
    book.set(TenantPolicy("t", loops={**LOOP_DEFAULTS, "max_repeats": 3}))
    chain = Chain(ProcessorsSettings(topic_prefix="p."), codec, Redactor(b"k"), book, "p.fleet")
    events, seq = [syn.run_start("t", "r")], 1
    for status in range(12):
        for _ in range(rng.randint(1, 2)):
            events.append(_poll("r", seq, f"{rng.getrandbits(256):064x}" if status else "0" * 64))
            seq += 1
    state: dict = {}
    out = chain.process([InRecord("p.raw", 0, n, e["run_id"].encode(), codec.encode(EVENT, e))
                         for n, e in enumerate(events)],
                        lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    assert [codec.decode_as(ALERT, o.value)["title"] for o in out if o.topic == "p.alerts"] == []
    assert sum(1 for o in out if o.topic == "p.events") == len(events)
    # clean records go on as their bytes: the digest's key and value trip no content pattern
    assert chain.redaction.counts.passed_bytes == len(events)
